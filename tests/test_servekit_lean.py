"""start_ray leaves out the head processes a fixed-size course cluster does not use, and puts
Ray's classes back after ``ray.init``.

Run under the shared lock: ``flock /tmp/ray.lock pytest tests/test_servekit_lean.py``.
"""

from __future__ import annotations

import contextlib
import os

import psutil
import pytest
import requests

from servekit import cluster

LEFT_OUT = ("monitor.py", "log_monitor.py", "dashboard/dashboard.py")


def test_ray_init_gets_lean_params_only_while_it_runs(monkeypatch, tmp_path):
    import ray
    from ray._private import node, parameter

    seen = {}

    def fake_init(**kwargs):
        params = parameter.RayParams()
        seen["monitors"] = (params.no_monitor, params.include_log_monitor)
        seen["api_server_skipped"] = node.Node.start_api_server is not original_start
        seen["arenas"] = os.environ.get("MALLOC_ARENA_MAX")
        raise RuntimeError("stop before a cluster starts")

    original_params, original_start = parameter.RayParams, node.Node.start_api_server
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cases = [
        ({}, (True, False), True, "2"),
        ({"dashboard": True}, (True, False), False, "2"),
        ({"lean": False}, (False, None), False, None),
    ]
    for options, monitors, skipped, arenas in cases:
        with pytest.raises(RuntimeError, match="stop before"):
            cluster.start_ray(**options)
        assert seen == {"monitors": monitors, "api_server_skipped": skipped, "arenas": arenas}, options
        assert parameter.RayParams is original_params, "put back, even when ray.init fails"
        assert node.Node.start_api_server is original_start
        assert "MALLOC_ARENA_MAX" not in os.environ, "only the cluster's processes get it"

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # a learner's own setting wins
    with pytest.raises(RuntimeError, match="stop before"):
        cluster.start_ray()
    assert seen["arenas"] == "4" and os.environ["MALLOC_ARENA_MAX"] == "4"


def test_a_lean_cluster_runs_without_them_and_serves(serve_cluster):
    from ray import serve

    @serve.deployment
    class Hello:
        def __call__(self, request) -> str:
            return "hello"

    serve.run(Hello.bind(), name="lean", route_prefix="/lean")
    try:
        assert requests.get(cluster.serve_url("/lean"), timeout=30).text == "hello"
        commands, arenas = [], {}
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):  # one that exits meanwhile, or another test's zombie
                commands.append(" ".join(process.cmdline()))
                environ = process.environ()  # empty for Ray's agents: their new process titles overwrite it
                if environ:
                    arenas[process.name()] = environ.get("MALLOC_ARENA_MAX")
        assert any("gcs_server" in c for c in commands) and any("raylet" in c for c in commands)
        assert not [c for c in commands if any(f"/{name} " in c for name in LEFT_OUT)], commands
        replicas = [name for name in arenas if name.startswith("ray::ServeReplica")]
        assert {"gcs_server", "raylet", "ray::ServeController", "ray::ProxyActor"} <= set(arenas), arenas
        assert replicas and set(arenas.values()) == {"2"}, arenas
    finally:
        serve.delete("lean")
