"""Run an ASGI app (e.g. a FastAPI app) under bare uvicorn in a child process, for comparisons with Serve."""

from __future__ import annotations

import contextlib
import copyreg
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from servekit.cluster import free_port
from servekit.paths import SCRATCH
from servekit.wait import wait_for

# The child unpickles the app (cloudpickle, as Serve ships an app to a replica) and runs it.
_CHILD = (
    "import pickle, sys, uvicorn; app = pickle.load(open(sys.argv[1], 'rb')); "
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning', access_log=False)"
)


def _pickle_starlette_state() -> None:
    """Starlette's ``State`` (``app.state``) cannot be unpickled as is: its ``__getattr__`` recurses
    before ``_state`` exists. Pickle it as ``State(dict)``, as Serve's own serializer does."""
    from starlette.datastructures import State

    copyreg.pickle(State, lambda state: (State, (state._state,)))


class UvicornFailed(RuntimeError):
    """The uvicorn process exited before it served; the message carries the end of its log."""


def _serving(url: str, process: subprocess.Popen, log: Path) -> bool:
    """True once the server answers anything over HTTP; raises if the process has exited."""
    if process.poll() is not None:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise UvicornFailed(f"uvicorn exited with code {process.returncode} before serving:\n{tail}")
    try:
        requests.get(url, timeout=5)
    except requests.ConnectionError:
        return False
    return True


@contextlib.contextmanager
def serve_with_uvicorn(app: Any, port: int | None = None, timeout_s: float = 120.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in its own Python process on 127.0.0.1; yield its base URL.

    The process owns the socket, its event loop and its GIL, so a client in this process does
    not compete with it. Its log goes to ``scratch/uvicorn-<port>.log``. On leaving the block the
    process is stopped by its PID (SIGTERM: uvicorn shuts down gracefully; SIGKILL after 30 s).
    """
    from ray import cloudpickle

    _pickle_starlette_state()
    port = port or free_port(8001)
    if free_port(port) != port:  # else the readiness check could see another server's answers
        raise UvicornFailed(f"port {port} is in use")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    app_file, log_file = SCRATCH / f"uvicorn-{port}.pkl", SCRATCH / f"uvicorn-{port}.log"
    app_file.write_bytes(cloudpickle.dumps(app))
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(app_file), str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _serving(url, process, log_file), timeout_s, f"uvicorn serving at {url}", 0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        app_file.unlink(missing_ok=True)
