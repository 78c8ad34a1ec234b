"""Run a Serve app and a measurement in a fresh process whose cluster runs in a chosen Serve mode.

Serve reads its performance flags (``RAY_SERVE_THROUGHPUT_OPTIMIZED``, ``RAY_SERVE_ENABLE_HA_PROXY``)
once, when a process imports ``ray.serve``, and every Ray process inherits them from the process
that started the cluster. A notebook kernel that already imported Serve cannot switch. So
:func:`run_in_mode` starts a new Python process with the mode's variables in its environment;
that process starts its own cluster, deploys ``app`` (the lesson's own object, sent with Ray's
cloudpickle, as ``serve.run`` sends it to replicas), calls ``await measure(handle, url)`` and sends
the result back::

    results = servekit.compare_modes(app, measure, name="batching", route_prefix="/batching")
    results["throughput"]  # whatever measure returned, measured in throughput-optimized mode

Stop your own cluster's app first (``serve.delete``): the child needs the cores and the memory.
In the child, handles need a running event loop in throughput mode (``.result()`` raises), so
``measure`` is a coroutine function and uses ``await``. ``baseline``, if given, runs in the child
before its cluster starts (e.g. the model's offline speed), so that a ratio compares numbers taken
minutes apart at most, on a machine whose other load may have changed meanwhile.

:func:`servekit.notebook_cells.load_cells` runs a notebook's cells tagged ``app-code`` and
``measure-code`` in a fresh module, so that a script can measure a lesson's own app in each mode
(``make bench`` does, through ``scripts/bench.py``).

A FastAPI app usually answers 404 at its bare route prefix: give a path that answers once the app is
up (``health_path="/docs"``).
"""

from __future__ import annotations

import asyncio
import copyreg
import os
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from servekit.child import in_child
from servekit.paths import REPO_ROOT

MODES: dict[str, dict[str, str]] = {
    "default": {},
    # HAProxy replaces Serve's Python proxy on the HTTP port; without it the throughput flag
    # leaves HTTP through port 8000 as slow as before (it speeds up handles and direct ingress).
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
}

Measure = Callable[[Any, str], Awaitable[Any]]
Baseline = Callable[[], Any]


def mode_env(mode: str, run_dir: Path) -> dict[str, str]:
    """The environment variables of ``mode``, plus what a throwaway single-machine cluster needs.

    Direct-ingress replicas otherwise hold ``serve.shutdown()`` for 30 s so that an external load
    balancer can deregister them (``graceful_shutdown_timeout_s`` cannot shorten it); nothing here
    needs that. HAProxy's files go to ``run_dir`` instead of a fixed /tmp/haproxy-serve, and its
    stats and Prometheus ports (bound on all interfaces) to free ports instead of 8404 and 9101.
    """
    from servekit.cluster import free_port

    env = dict(MODES[mode])
    if env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        base = run_dir  # Serve adds a 56-character folder; HAProxy's socket paths must stay < 98 chars
        env |= {
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port(0)),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port(0)),
        }
    if env:
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    return env


def run_in_mode(
    mode: str,
    app: Any,
    measure: Measure,
    name: str = "app",
    route_prefix: str = "/app",
    num_cpus: int = 2,
    timeout_s: float = 300.0,
    health_path: str = "",
    baseline: Baseline | None = None,
) -> Any:
    """Deploy ``app`` in a fresh process with its own cluster in ``mode`` (a key of :data:`MODES`),
    run ``await measure(handle, url)`` there and return its result (anything picklable).

    The app counts as up once ``url + health_path`` answers below 500. With ``baseline``, the child
    first calls ``baseline()`` (before its cluster starts) and the result is
    ``{"baseline": baseline(), "measured": await measure(handle, url)}``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
    job = (app, measure, name, route_prefix, num_cpus, health_path, baseline)
    with tempfile.TemporaryDirectory(prefix="svk-") as tmp:
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **mode_env(mode, Path(tmp)), "PYTHONPATH": path}
        try:
            return in_child(_serve_and_measure, *job, timeout_s=timeout_s, env=env, cwd=REPO_ROOT)
        except Exception as exc:
            raise RuntimeError(f"the {mode} run failed: {type(exc).__name__}: {exc}") from exc


def compare_modes(
    app: Any, measure: Measure, modes: Sequence[str] = ("default", "throughput"), **options: Any
) -> dict[str, Any]:
    """:func:`run_in_mode` for each mode, one after the other (never two clusters at once)."""
    return {mode: run_in_mode(mode, app, measure, **options) for mode in modes}


def fresh_locks() -> None:
    """Let pickle send a thread lock as a new, unlocked one (this process only).

    An app unpickled here holds the plain locks FastAPI keeps in it, and ``serve.run`` pickles the
    app again to ship it to the replica. Ray teaches its cloudpickle the same rule when
    ``@serve.ingress`` runs, which never happens in this process.
    """
    for factory in (threading.Lock, threading.RLock):
        copyreg.pickle(type(factory()), lambda lock, factory=factory: (factory, ()))


def _serve_and_measure(
    app: Any,
    measure: Measure,
    name: str,
    route_prefix: str,
    num_cpus: int,
    health_path: str,
    baseline: Baseline | None,
) -> Any:
    """:func:`run_in_mode`'s fresh process: cluster, app, measurement, then everything it started is
    stopped. Module-level, so that :func:`in_child` sends it by reference."""
    import ray
    import requests
    from ray import serve

    from servekit.cleanup import become_subreaper, reap_leftovers
    from servekit.cluster import serve_url, start_ray, start_serve
    from servekit.health import wait_until_healthy
    from servekit.wait import wait_for

    become_subreaper()
    fresh_locks()  # before serve.run pickles the app again
    before = baseline() if baseline is not None else None  # alone on the machine, no cluster yet

    async def main() -> Any:
        start_serve(access_log=False)
        handle = serve.run(app, name=name, route_prefix=route_prefix)
        url = serve_url(route_prefix)
        ready = url + health_path
        wait_until_healthy(name, ready)
        # HAProxy health-checks a new replica before routing to it, and answers 500 until then.
        wait_for(lambda: _status(requests, ready) in range(200, 500), 60, f"{ready} answering")
        try:
            return await measure(handle, url)
        finally:
            await serve.shutdown_async()  # in the loop the handles' routers run in (throughput mode)

    start_ray(num_cpus=num_cpus, prestart_workers=False)  # only Serve's actors run: no idle task workers
    try:
        result = asyncio.run(main())
    finally:
        ray.shutdown()
        reap_leftovers()
    return result if baseline is None else {"baseline": before, "measured": result}


def _status(requests, url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return 0
