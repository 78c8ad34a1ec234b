"""A start_ray cluster listens on loopback only, except Serve replicas' gRPC servers; and the switch
that does it stays out of a multi-node cluster's ``ray start`` commands.

Run under the shared lock: ``flock /tmp/ray.lock pytest tests/test_servekit_loopback.py``.
"""

from __future__ import annotations

import os
import re

import psutil
import pytest
import requests

from servekit import cluster, ray_patches
from servekit.ray_cluster import LocalCluster
from servekit.sockets import exposed, listening_sockets


def test_the_switch_is_set_only_while_ray_init_runs(monkeypatch, tmp_path):
    import ray
    from ray._private import ray_constants

    seen = {}

    def fake_init(**kwargs):
        seen["env"] = os.environ.get(ray_patches.SINGLE_MACHINE_VAR)
        seen["flag"] = ray_constants.ENABLE_RAY_CLUSTER
        raise RuntimeError("stop before a cluster starts")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path)
    monkeypatch.delenv(ray_patches.SINGLE_MACHINE_VAR, raising=False)
    flag = ray_constants.ENABLE_RAY_CLUSTER
    for loopback_only, during in ((True, ("0", False)), (False, (None, flag))):
        with pytest.raises(RuntimeError, match="stop before"):
            cluster.start_ray(loopback_only=loopback_only)
        assert (seen["env"], seen["flag"]) == during
        assert ray_patches.SINGLE_MACHINE_VAR not in os.environ, "put back, even when ray.init fails"
        assert ray_constants.ENABLE_RAY_CLUSTER is flag


def test_on_another_ray_the_patches_warn_and_leave_ray_alone(monkeypatch):
    import ray
    from ray._private import node, parameter, ray_constants

    assert ray_patches.written_for_this_ray(), f"the pinned Ray is {ray_patches.WRITTEN_FOR}.x"
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    monkeypatch.delenv(ray_patches.SINGLE_MACHINE_VAR, raising=False)
    before = (ray_constants.ENABLE_RAY_CLUSTER, parameter.RayParams, node.Node.start_api_server)
    with pytest.warns(RuntimeWarning, match="written for Ray 2.60, not 2.61.0"):
        with ray_patches.single_machine_mode(), ray_patches.without_idle_helpers(api_server=False):
            during = (ray_constants.ENABLE_RAY_CLUSTER, parameter.RayParams, node.Node.start_api_server)
            assert ray_patches.SINGLE_MACHINE_VAR not in os.environ
    assert during == before


def test_ray_start_commands_never_inherit_the_switch(monkeypatch, tmp_path):
    monkeypatch.setenv(ray_patches.SINGLE_MACHINE_VAR, "0")
    c = LocalCluster(tmp_path, 1, 2, "token", {"RAY_AUTH_MODE": "token"})
    env = c.full_env()
    assert ray_patches.SINGLE_MACHINE_VAR not in env
    assert env["RAY_AUTH_MODE"] == "token" and env["PATH"] == os.environ["PATH"]


def _ray_pids() -> list[int]:
    """This driver and every process its cluster runs (ray.init's children and theirs)."""
    return [os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))]


def test_a_course_cluster_listens_on_loopback_but_for_replica_grpc(serve_cluster):
    from ray import serve

    @serve.deployment
    class Echo:
        def __call__(self, text: str) -> str:
            return text

    @serve.deployment
    class Front:  # calls Echo through a handle: the traffic those gRPC servers are for
        def __init__(self, echo) -> None:
            self.echo = echo

        async def __call__(self, request) -> str:
            return await self.echo.remote("ok")

    serve.run(Front.bind(Echo.bind()), name="loopback", route_prefix="/loopback")
    try:
        answer = requests.get(f"http://127.0.0.1:{serve_cluster}/loopback", timeout=30)
        assert (answer.status_code, answer.text) == (200, "ok")
        sockets = listening_sockets(_ray_pids())
        assert any(s.port == serve_cluster and s.address == "127.0.0.1" for s in sockets)
        open_ = exposed(sockets)
        # What stays on all interfaces: one gRPC server per replica (Serve binds "[::]:0").
        assert {(s.proto, s.address) for s in open_} <= {("tcp6", "::"), ("tcp", "0.0.0.0")}, open_
        # the replica's title, "ray::ServeReplica:<app>:<deployment>" (".<method>" while it runs one)
        names = [re.fullmatch(r"ray::ServeReplica:loopback:(\w+)(\.\w+)?", s.name) for s in open_]
        assert all(names) and sorted(m[1] for m in names) == ["Echo", "Front"], open_
        assert len({s.pid for s in open_}) == len(open_), "one per replica process"
    finally:
        serve.delete("loopback")
