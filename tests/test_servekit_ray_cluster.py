"""servekit.ray_cluster on a real two-node cluster: `ray start` processes, token auth, the serve CLI,
cleanup's registry, and stopping nodes by process group and PID. Starts Ray: on a shared machine
run it under the lock (``flock /tmp/ray.lock pytest tests/test_servekit_ray_cluster.py``)."""

from __future__ import annotations

import os

import psutil
import pytest
import requests

from servekit import cleanup
from servekit.ray_cluster import FAST_NODE_FAILURE, start_cluster


@pytest.fixture(scope="module")
def cluster():
    """A head node (1 CPU) for this module; stopped (and the environment restored) even if a test fails."""
    saved = dict(os.environ)
    c = start_cluster(num_cpus=1, extra_env=FAST_NODE_FAILURE)
    try:
        yield c
    finally:
        c.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_head_is_up_with_token_auth_on_loopback_dashboard(cluster):
    assert os.environ["RAY_AUTH_MODE"] == "token" and os.environ["RAY_AUTH_TOKEN"] == cluster.token
    api = f"{cluster.dashboard_url}/api/serve/applications/"
    assert requests.get(api, timeout=10).status_code == 401
    assert requests.get(api, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code in (401, 403)
    assert requests.get(api, headers={"Authorization": f"Bearer {cluster.token}"}, timeout=10).ok
    assert cluster.dashboard_url.startswith("http://127.0.0.1:")
    assert "ray_" in requests.get(cluster.metrics_url(), timeout=10).text  # the fixed metrics port answers


def test_serve_cli_authenticates_with_the_cluster_environment(cluster):
    out = cluster.serve("status")
    assert "applications: {}" in out
    bare = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # the token alone is not sent
    import subprocess

    from servekit.ray_cluster import _bin

    refused = subprocess.run([_bin("serve"), "status"], env=bare, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0


def test_a_worker_node_joins_is_registered_and_stops_by_pid(cluster):
    worker = cluster.add_node("worker", num_cpus=1, resources={"node2": 1})
    alive = cluster.alive_nodes()
    assert len(alive) == 2
    assert any(n["resources_total"].get("node2") == 1 for n in alive)
    found = {pid for c in cleanup.find_clusters([cluster.temp_dir]) for pid in c.processes}
    worker_pids = {p.pid for p in worker.processes()}
    assert worker_pids and worker_pids <= found, "cleanup finds the worker node's processes"
    assert cluster.registry is not None and cluster.registry.exists()
    cluster.stop_node("worker")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in worker_pids)
    assert len(cluster.wait_for_nodes(1, timeout_s=30)) == 1  # the GCS declared it dead (fast detection)


def test_stop_leaves_no_process():
    saved = dict(os.environ)
    c = start_cluster(num_cpus=1)
    try:
        pids = set(c.pids())
        assert len(pids) > 3
    finally:
        c.stop()
        os.environ.clear()
        os.environ.update(saved)
    left = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not left and not c.registry.exists()


@pytest.fixture
def dashboard_port_raced(monkeypatch):
    """A port that is free when start_cluster chooses its dashboard port and taken when the head binds
    it, as when a second notebook or test run starts a cluster at the same moment: ``free_port(8265)``
    answers a port this test then holds with a listening socket. Yields that port."""
    import socket

    import servekit.ray_cluster as ray_cluster

    saved = dict(os.environ)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    real = ray_cluster.free_port
    monkeypatch.setattr(
        ray_cluster,
        "free_port",
        lambda preferred=8000, host="127.0.0.1": port if preferred == 8265 else real(preferred, host),
    )
    try:
        yield port
    finally:
        holder.close()
        os.environ.clear()
        os.environ.update(saved)


def test_a_port_taken_between_choice_and_bind_is_replaced(dashboard_port_raced, capsys):
    c = start_cluster(num_cpus=1)
    try:
        assert c.dashboard_port != dashboard_port_raced
        assert (
            os.environ["RAY_DASHBOARD_ADDRESS"] == c.dashboard_url == f"http://127.0.0.1:{c.dashboard_port}"
        )
        headers = {"Authorization": f"Bearer {c.token}"}
        assert requests.get(f"{c.dashboard_url}/api/serve/applications/", headers=headers, timeout=10).ok
        assert len(c.alive_nodes()) == 1
        said = capsys.readouterr().out
        assert f"--dashboard-port={dashboard_port_raced} taken by another process" in said, said
    finally:
        c.stop()


def test_a_port_taken_on_the_last_try_is_named_in_the_error(dashboard_port_raced, monkeypatch):
    import servekit.ray_cluster as ray_cluster

    monkeypatch.setattr(ray_cluster, "START_ATTEMPTS", 1)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(
        ray_cluster.PortTaken, match=f"another process holds --dashboard-port={dashboard_port_raced}"
    ):
        start_cluster(num_cpus=1)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not cleanup.still_running(lambda: left, 10), "the failed head leaves nothing running"


def test_a_head_that_timed_out_under_load_comes_up_on_the_next_try(monkeypatch, capsys):
    # The first `ray start` exits as Ray's node.py does when the raylet did not register within 30 s on a
    # machine other work keeps busy; the second is real and must give a working cluster.
    import subprocess
    import sys

    import servekit.ray_cluster as ray_cluster

    real, calls = ray_cluster.LocalCluster._start, []

    def start(self, name, args, metrics_port, num_cpus, resources):  # noqa: ANN001, ANN202
        calls.append(name)
        if len(calls) > 1:
            return real(self, name, args, metrics_port, num_cpus, resources)
        with open(self.log_dir / f"{name}.log", "a") as log:
            log.write(
                "Exception: The current node timed out during startup. ... GCS has become overloaded.\n"
            )
        process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
        process.wait()
        node = self.nodes[name] = ray_cluster.Node(name, process, metrics_port, num_cpus, resources)
        return node

    monkeypatch.setattr(ray_cluster.LocalCluster, "_start", start)
    saved = dict(os.environ)
    c = start_cluster(num_cpus=1)
    try:
        assert calls == ["head", "head"]
        assert len(c.alive_nodes()) == 1
        assert (
            "'head' timed out during startup (a busy machine?); starting it again." in capsys.readouterr().out
        )
    finally:
        c.stop()
        os.environ.clear()
        os.environ.update(saved)
