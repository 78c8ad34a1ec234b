"""Wait until a Serve application can answer, with a deadline and a readable reason when it can't."""

from __future__ import annotations

import time

import requests


class AppNotHealthy(RuntimeError):
    """The application did not reach RUNNING (or its route did not answer) in time."""


def _name(status) -> str:
    """'DEPLOYING', not 'ApplicationStatus.DEPLOYING': Serve's statuses are str enums."""
    return getattr(status, "value", status)


def _describe(app) -> str:
    lines = [f"application status {_name(app.status)}" + (f": {app.message}" if app.message else "")]
    for name, dep in app.deployments.items():
        replicas = ", ".join(f"{n} {state}" for state, n in dep.replica_states.items()) or "no replicas"
        lines.append(
            f"  deployment {name}: {_name(dep.status)} ({replicas})"
            + (f"\n    {dep.message}" if dep.message else "")
        )
    return "\n".join(lines)


def wait_until_healthy(
    app_name: str, url: str | None = None, timeout_s: float = 120.0, poll_s: float = 0.25
) -> float:
    """Block until ``app_name`` is RUNNING in ``serve.status()`` and, if given, ``url`` answers.

    A route answers once the proxy has learnt it: any reply but 404/503 counts. Raises
    :class:`AppNotHealthy` on DEPLOY_FAILED/UNHEALTHY at once, or after ``timeout_s`` with
    each deployment's status and message (e.g. replicas pending for lack of CPUs/GPUs).
    Returns the seconds waited.
    """
    from ray import serve

    start = time.monotonic()
    deadline = start + timeout_s
    app = None
    while True:
        app = serve.status().applications.get(app_name)
        if app is not None and app.status == "RUNNING":
            break
        if app is not None and app.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise AppNotHealthy(f"app {app_name!r} failed:\n{_describe(app)}")
        if time.monotonic() > deadline:
            what = (
                _describe(app)
                if app is not None
                else "it is not deployed (check the name passed to serve.run)"
            )
            raise AppNotHealthy(f"app {app_name!r} not RUNNING after {timeout_s:.0f} s: {what}")
        time.sleep(poll_s)
    while url is not None:
        try:
            if requests.get(url, timeout=5).status_code not in (404, 503):
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AppNotHealthy(
                f"app {app_name!r} is RUNNING but {url} did not answer within {timeout_s:.0f} s"
            )
        time.sleep(poll_s)
    return time.monotonic() - start
