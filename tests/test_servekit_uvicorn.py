"""servekit.serve_with_uvicorn: a real uvicorn child process, started, served and stopped by PID."""

from __future__ import annotations

import sys

import psutil
import pytest
import requests
from fastapi import FastAPI
from ray import cloudpickle

import servekit
from servekit.paths import SCRATCH

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the child cannot import this test module

app = FastAPI()


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "uvicorn"}


def _cmdline(proc: psutil.Process) -> list[str]:
    # Earlier tests in the same pytest process may leave an exited child not yet reaped (a zombie), whose
    # command line cannot be read: it is not the server this test looks for.
    try:
        return proc.cmdline()
    except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_serves_the_app_then_stops_the_process_and_removes_its_files():
    port = servekit.free_port(8011)
    with servekit.serve_with_uvicorn(app, port) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/hello", timeout=10).json() == {"hello": "uvicorn"}
        (child,) = [p for p in psutil.Process().children() if str(port) in " ".join(_cmdline(p))]
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert not (SCRATCH / f"uvicorn-{port}.pkl").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/hello", timeout=2)


class ExitOnLoad:
    """Unpickling this ends the process that does it, with exit code 3."""

    def __reduce__(self):
        return (sys.exit, (3,))


def test_a_process_that_cannot_serve_fails_fast_with_its_log():
    with pytest.raises(servekit.UvicornFailed, match="exited with code 3"):
        with servekit.serve_with_uvicorn(ExitOnLoad(), timeout_s=60):
            pass


def test_a_port_in_use_is_refused():
    with servekit.serve_with_uvicorn(app) as url:
        with pytest.raises(servekit.UvicornFailed, match="in use"):
            with servekit.serve_with_uvicorn(app, int(url.rsplit(":", 1)[1])):
                pass
