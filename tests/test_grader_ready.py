"""The grader's wait for a submission's apps before its checks (servekit/grader/ready.py), against a
real HTTP server that plays Serve's proxy: a grade must not depend on how busy the machine is."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlparse

from conftest import QuietHandler, local_http_server
from servekit.grader.ready import wait_until_serving
from servekit.grader.report import Report
from servekit.grader.rubric import Live


def proxy(routes: dict[str, str], answers: list[int]):
    """A handler class: ``GET /-/routes`` lists ``routes``; any other path answers the next status of
    ``answers`` (the last one repeats). Counts the requests to the app in ``Handler.hits``."""

    class Handler(QuietHandler):
        hits = 0

        def do_GET(self):
            if self.path == "/-/routes":
                self.reply(200, json.dumps(routes).encode())
                return
            status = answers[min(type(self).hits, len(answers) - 1)]
            type(self).hits += 1
            self.reply(status, b'{"detail": "x"}')

    return Handler


def live(url: str, status: str = "RUNNING", route: str = "/lengths") -> Live:
    apps = {"lengths": {"status": status, "route_prefix": route, "deployments": {}}}
    return Live({"serve_port": urlparse(url).port, "serve_apps": apps}, Path("."), "")


def test_waits_through_gateway_errors_until_the_route_answers():
    handler = proxy({"/lengths": "lengths"}, [503, 503, 502, 405])  # a GET to a POST route: answered
    with local_http_server(handler) as url:
        t0 = time.monotonic()
        ready = wait_until_serving(live(url), timeout_s=20, poll_s=0.2)
    assert ready["ready"] is True, ready
    assert handler.hits == 4, "it polled until the first answer that is not a gateway error, then stopped"
    assert 0.5 <= ready["waited_s"] <= time.monotonic() - t0 + 0.1


def test_an_app_that_never_answers_ends_the_wait_at_its_bound_with_the_reason():
    handler = proxy({"/lengths": "lengths"}, [503])
    with local_http_server(handler) as url:
        t0 = time.monotonic()
        ready = wait_until_serving(live(url), timeout_s=2, poll_s=0.2)
        took = time.monotonic() - t0
    assert ready["ready"] is False and "/lengths: HTTP 503" in ready["why"], ready
    assert 1.5 <= took < 5, took
    md = _report_with(ready).to_markdown()
    assert "did not answer over HTTP within 2 s" in md and "HTTP 503" in md, md


def test_a_route_the_proxy_does_not_list_yet_is_not_ready():
    handler = proxy({"/other": "other"}, [200])
    with local_http_server(handler) as url:
        ready = wait_until_serving(live(url), timeout_s=1, poll_s=0.2)
    assert ready["ready"] is False and "/lengths is not in the proxy's routes" in ready["why"], ready
    assert handler.hits == 0, "no request goes to a route the proxy does not serve"


def test_a_refused_connection_is_not_ready():
    with local_http_server(proxy({}, [200])) as url:
        pass  # the server is gone: nothing listens on its port now
    ready = wait_until_serving(live(url), timeout_s=1, poll_s=0.2)
    assert ready["ready"] is False and "proxy did not answer" in ready["why"], ready


def test_nothing_to_wait_for_returns_at_once():
    with local_http_server(proxy({"/lengths": "lengths"}, [200])) as url:
        for kernel in (live(url, status="DEPLOY_FAILED"), live(url, route=None), Live({}, Path("."), "")):
            t0 = time.monotonic()
            ready = wait_until_serving(kernel, timeout_s=5)
            assert (
                ready == {"ready": False, "waited_s": 0.0, "why": ready["why"]} and time.monotonic() - t0 < 1
            )
    assert "At the check point the kernel reported no running app" in _report_with(ready).to_markdown()


def _report_with(ready: dict) -> Report:
    return Report(
        student="s",
        notebook="n.ipynb",
        assignment="10",
        title="t",
        total=100,
        execution={"ran": True, "cells_run": 3, "app_ready": ready},
    )


def test_the_grader_finds_only_its_submissions_fallback_session_folders(tmp_path, monkeypatch):
    """A submission whose scratch/ray path is too long gets a /tmp folder tagged with its scratch folder;
    the grader's teardown looks only there, so a grader never stops another run's cluster."""
    from servekit import cluster
    from servekit.grader.processes import fallback_dirs

    monkeypatch.setattr(cluster, "FALLBACK_PARENT", tmp_path)
    mine, theirs = tmp_path / "grading" / "alice-x" / "scratch", tmp_path / "grading" / "bob-y" / "scratch"
    for scratch in (mine, theirs):
        monkeypatch.setattr(cluster, "SCRATCH", scratch / ("x" * 120))  # too long: the fallback is used
        monkeypatch.setattr(cluster, "_state", {})
        monkeypatch.setattr(cluster, "_forget_at_exit", lambda: None)
        made = cluster.ray_temp_dir()
        assert made.parent == tmp_path and made.name.startswith(
            cluster.fallback_prefix(scratch / ("x" * 120))
        )
    found_mine = fallback_dirs(mine / ("x" * 120))
    found_theirs = fallback_dirs(theirs / ("x" * 120))
    assert len(found_mine) == len(found_theirs) == 1 and not found_mine & found_theirs
    assert fallback_dirs(tmp_path / "nobody") == set()
