"""Wait until a Serve application can answer, with a deadline and a readable reason when it can't."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

import requests

T = TypeVar("T")


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


def deploys_within(deploy: Callable[[], T], app_name: str, timeout_s: float = 60.0) -> T:
    """``deploy()`` (a function that calls ``serve.run``), failing after ``timeout_s`` instead of hanging.

    ``serve.run`` waits for every replica, and a replica that asks for more CPUs or GPUs than
    the cluster has free waits for ever. An exercise check calls the learner's deploy function
    through this: past the deadline it raises :class:`AppNotHealthy` with the status and message
    of each application that is not RUNNING (``app_name`` when all are), and deletes those
    applications, so that ``serve.run`` returns (with an error) and frees what it holds. What
    ``deploy()`` returns (a handle), or raises, comes back unchanged.
    """
    from ray import serve

    pool = ThreadPoolExecutor(1, thread_name_prefix="deploy")
    running = pool.submit(deploy)
    try:
        return running.result(timeout=timeout_s)
    except FutureTimeout:
        apps = serve.status().applications
        stuck = {name: app for name, app in apps.items() if app.status != "RUNNING"}
        if not stuck:
            stuck = {app_name: apps[app_name]} if app_name in apps else {}
        why = "\n".join(f"app {name!r}: {_describe(app)}" for name, app in stuck.items())
        for name in stuck:
            serve.delete(name)
        why = why or f"no app {app_name!r} is deployed (check the name passed to serve.run)"
        raise AppNotHealthy(f"serve.run did not return in {timeout_s:.0f} s:\n{why}") from None
    finally:
        pool.shutdown(wait=False)
