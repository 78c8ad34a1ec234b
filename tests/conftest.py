"""Fixtures shared by the tests in tests/ (the root conftest.py guards notebook runs)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture(scope="module")
def serve_cluster():
    """One live local Ray cluster with Serve on 127.0.0.1 for a test module; yields the HTTP port.

    Sized like a lesson's (2 logical CPUs), access log off. Tests deploy their own apps with
    ``serve.run(app, name=..., route_prefix=...)`` and should ``serve.delete(name)`` when done, so
    the next app finds the CPUs free. Anything that starts Ray must run under the shared lock
    (``flock /tmp/ray.lock pytest ...``) on a shared machine.
    """
    import servekit

    servekit.start_ray(num_cpus=2)
    try:
        yield servekit.start_serve(access_log=False)
    finally:
        servekit.shutdown()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for :func:`local_http_server` that logs nothing and answers with :meth:`reply`."""

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 (a free port) answering with ``handler``; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# The grader's test submissions (tests/test_grade.py) and the nbval canary (tests/test_nbval_canary.py):
# nbval must not run them, they fail on purpose. This list replaces the root conftest's for tests/
# (pytest takes collect_ignore_glob from the nearest conftest), so the canary is named here too.
collect_ignore_glob = ["grading_fixtures/*", "canary/*"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts Ray clusters for minutes (e.g. the grader's real runs)")
