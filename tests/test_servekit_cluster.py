"""Cluster plumbing that needs no running Ray: ports, temp dir, token, cleanup, health messages."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from servekit import cleanup, cluster, health


def test_free_port_prefers_the_asked_port_and_avoids_a_busy_one():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        other = cluster.free_port(busy)
        assert other != busy
    assert cluster.free_port(busy) == busy  # free again once the listener closed


def test_ray_temp_dir_stays_under_scratch_when_short(monkeypatch):
    short = Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))
    try:
        monkeypatch.setattr(cluster, "SCRATCH", short)
        assert cluster.ray_temp_dir() == short / "ray" and (short / "ray").is_dir()
    finally:
        shutil.rmtree(short)


def test_ray_temp_dir_falls_back_for_long_paths_and_shutdown_removes_it(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path / ("x" * 80))
    path = cluster.ray_temp_dir()
    assert str(path).startswith("/tmp/servekit-ray-") and path.is_dir()
    cluster.shutdown()  # Ray is not running: only the temp dir goes
    assert not path.exists()


def test_session_token_is_kept_in_the_environment(monkeypatch):
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    cluster.use_session_token()
    token = os.environ["RAY_AUTH_TOKEN"]
    assert len(token) == 32
    cluster.use_session_token()
    assert os.environ["RAY_AUTH_TOKEN"] == token  # not replaced once set


def test_kill_processes_stops_a_child_and_its_grandchild():
    code = "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            if psutil.Process(proc.pid).children():
                break
            psutil.wait_procs([], timeout=0.05)
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(tree) == 2
        assert {p.pid for p in cleanup.descendants()} >= {p.pid for p in tree}
        cleanup.kill_processes(tree, timeout_s=5)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    finally:
        proc.kill()
        proc.wait()


def _status(app_status, message="", replica_states=None, dep_status="UPDATING", dep_message=""):
    dep = SimpleNamespace(status=dep_status, message=dep_message, replica_states=replica_states or {})
    app = SimpleNamespace(status=app_status, message=message, deployments={"Model": dep})
    return SimpleNamespace(applications={"demo": app})


def test_wait_reports_pending_replicas_with_the_resource_message(monkeypatch):
    from ray import serve

    msg = "Deployment 'Model' has 1 replicas that have taken more than 30s to be scheduled. Resources required: {'GPU': 1}"
    monkeypatch.setattr(
        serve,
        "status",
        lambda: _status("DEPLOYING", replica_states={"PENDING_ALLOCATION": 1}, dep_message=msg),
    )
    with pytest.raises(health.AppNotHealthy) as err:
        health.wait_until_healthy("demo", timeout_s=0.3, poll_s=0.05)
    text = str(err.value)
    assert "not RUNNING" in text and "1 PENDING_ALLOCATION" in text and "{'GPU': 1}" in text


def test_wait_prints_status_names_not_enum_reprs(monkeypatch):
    from ray import serve
    from ray.serve._private.common import DeploymentStatus
    from ray.serve.schema import ApplicationStatus

    status = _status(
        ApplicationStatus.DEPLOYING, dep_status=DeploymentStatus.UPDATING, replica_states={"STARTING": 1}
    )
    monkeypatch.setattr(serve, "status", lambda: status)
    with pytest.raises(health.AppNotHealthy) as err:
        health.wait_until_healthy("demo", timeout_s=0.1, poll_s=0.05)
    assert "application status DEPLOYING" in str(
        err.value
    ) and "deployment Model: UPDATING (1 STARTING)" in str(err.value)
    assert "ApplicationStatus" not in str(err.value)


def test_wait_fails_fast_on_deploy_failed_and_names_unknown_apps(monkeypatch):
    from ray import serve

    monkeypatch.setattr(
        serve, "status", lambda: _status("DEPLOY_FAILED", message="constructor raised ValueError")
    )
    with pytest.raises(health.AppNotHealthy, match="constructor raised ValueError"):
        health.wait_until_healthy("demo", timeout_s=30)
    monkeypatch.setattr(serve, "status", lambda: SimpleNamespace(applications={}))
    with pytest.raises(health.AppNotHealthy, match="not deployed"):
        health.wait_until_healthy("demo", timeout_s=0.2, poll_s=0.05)


def test_wait_returns_when_running(monkeypatch):
    from ray import serve

    monkeypatch.setattr(
        serve, "status", lambda: _status("RUNNING", dep_status="HEALTHY", replica_states={"RUNNING": 1})
    )
    assert health.wait_until_healthy("demo", timeout_s=5) < 5


def test_course_clusters_finds_only_processes_of_our_scratch_folder(tmp_path):
    marker = str(tmp_path / "ray")
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"--log_dir={marker}/session_x"]
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--log_dir=/tmp/ray/session_y"]
    )
    try:
        found = {p.pid for p in cleanup.course_clusters(marker)}
        assert ours.pid in found and other.pid not in found
    finally:
        for p in (ours, other):
            p.kill()
            p.wait()
