"""Cluster plumbing that needs no running Ray: ports, temp dir, token, cleanup, health messages."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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


def test_serve_port_is_the_port_start_serve_chose(monkeypatch):
    """``servekit.serve_port()``: None before ``start_serve``, then the port it chose (not the one asked
    for when that one is busy), None again after ``shutdown``."""
    from ray import serve

    import servekit

    asked = []
    monkeypatch.setattr(serve, "start", lambda http_options, **kw: asked.append(http_options["port"]))
    monkeypatch.setattr(cluster, "_state", {})
    assert servekit.serve_port() is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        chosen = servekit.start_serve(busy)
    assert chosen != busy and servekit.serve_port() == chosen == asked[0]
    cluster.shutdown()  # no Ray running here: it only forgets the port
    assert servekit.serve_port() is None


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
    code = (
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)"
    )
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

    msg = (
        "Deployment 'Model' has 1 replicas that have taken more than 30s to be scheduled. "
        "Resources required: {'GPU': 1}"
    )
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


def _holding(path: Path) -> subprocess.Popen:
    """A process that keeps ``path`` open as its stdout, as Ray's processes keep their logs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as log:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log)


def _wait_open(proc: subprocess.Popen) -> None:
    for _ in range(100):
        if psutil.Process(proc.pid).open_files():
            return
        time.sleep(0.02)


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        p.kill()
        p.wait()


def test_find_clusters_by_open_session_files_and_never_a_driver(tmp_path):
    ours, other = tmp_path / "ray", tmp_path / "other"
    agent = _holding(ours / "session_a" / "logs" / "raylet.out")
    driver = _holding(ours / "session_a" / "logs" / "python-core-driver-01_1.log")
    foreign = _holding(other / "session_b" / "logs" / "raylet.out")
    try:
        for p in (agent, driver, foreign):
            _wait_open(p)
        (found,) = cleanup.find_clusters([ours])
        assert found.session_dir == ours / "session_a"
        assert set(found.processes) == {agent.pid} and found.live_driver == driver.pid
    finally:
        _stop(agent, driver, foreign)


def test_registry_pids_count_only_with_their_start_time(tmp_path):
    temp = tmp_path / "ray"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(proc.pid).create_time()
        entry = {"driver": [proc.pid, created - 100], "session_dir": str(temp / "session_x")}
        reg = temp / f"{cleanup.REGISTRY_PREFIX}1.json"
        reg.write_text(json.dumps({**entry, "pids": [[proc.pid, created - 5]]}))  # a recycled PID
        assert cleanup.find_clusters([temp]) == []
        reg.write_text(json.dumps({**entry, "pids": [[proc.pid, created]]}))
        (found,) = cleanup.find_clusters([temp])
        assert list(found.processes) == [proc.pid] and found.live_driver is None
    finally:
        _stop(proc)


def test_cli_stops_clusters_and_removes_only_the_kits_stale_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "FALLBACK_PARENT", tmp_path)
    monkeypatch.setattr("servekit.paths.SCRATCH", tmp_path / "scratch")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, live, legacy, busy, foreign = (tmp_path / f"servekit-ray-{n}" for n in ("1", "2", "3", "4", "5"))
    for d in (dead, live, legacy, busy, foreign):
        (d / "session_x" / "logs").mkdir(parents=True)
    (dead / f"{cleanup.REGISTRY_PREFIX}9.json").write_text(
        json.dumps({"driver": [gone.pid, 1.0], "session_dir": None, "pids": []})
    )
    cleanup.record_cluster(live)  # this process is its driver, still running
    (foreign / "notes.txt").write_text("not the kit's")
    agent = _holding(busy / "session_x" / "logs" / "raylet.out")
    try:
        _wait_open(agent)
        assert cleanup.main([]) == 0
        listing = capsys.readouterr().out
        assert f"  {agent.pid} python" in listing and "--kill" in listing
        assert agent.poll() is None and dead.exists()  # listing changes nothing
        cleanup.main(["--kill"])
        assert agent.wait(timeout=5) is not None
        assert {d.name for d in tmp_path.glob("servekit-ray-*")} == {live.name, foreign.name}
    finally:
        _stop(agent)


def test_cli_kill_spares_a_cluster_whose_kernel_still_runs_unless_all(tmp_path, monkeypatch, capsys):
    """Another notebook still open (or another test run) must keep its cluster: --kill stops only the
    clusters whose kernel is gone; --all stops the others too."""
    monkeypatch.setattr(cluster, "FALLBACK_PARENT", tmp_path)
    monkeypatch.setattr("servekit.paths.SCRATCH", tmp_path / "scratch")
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # a live driver
    live = tmp_path / "servekit-ray-live"
    (live / "session_x" / "logs").mkdir(parents=True)
    registry = live / f"{cleanup.REGISTRY_PREFIX}{kernel.pid}.json"
    driver = cleanup._stamp(psutil.Process(kernel.pid))
    registry.write_text(json.dumps({"driver": driver, "session_dir": str(live / "session_x"), "pids": []}))
    agent = _holding(live / "session_x" / "logs" / "raylet.out")
    try:
        _wait_open(agent)
        cleanup.main(["--kill"])
        said = capsys.readouterr().out
        assert agent.poll() is None and kernel.poll() is None, "a live kernel's cluster is left running"
        assert "Left running: " in said and f"its kernel {kernel.pid} still runs" in said, said
        cleanup.main(["--kill", "--all"])
        assert agent.wait(timeout=5) is not None and kernel.poll() is None, "--all stops it, never the kernel"
    finally:
        _stop(agent)
        kernel.kill()
        kernel.wait()


def test_ray_temp_dir_fallback_is_one_folder_per_process_with_a_registry(monkeypatch, tmp_path):
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path / ("x" * 80))
    monkeypatch.setattr(cluster, "FALLBACK_PARENT", tmp_path)
    first = cluster.ray_temp_dir()
    assert cluster.ray_temp_dir() == first
    assert (first / f"{cleanup.REGISTRY_PREFIX}{os.getpid()}.json").is_file()
    cluster.shutdown()
    assert not first.exists()


def test_start_ray_can_skip_prestarted_idle_workers(monkeypatch, tmp_path):
    import ray

    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before a cluster starts")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(cluster, "SCRATCH", tmp_path)
    # None: the default, which prestarts nothing (issue 12: <= 1.5 GiB per notebook).
    for prestart, expected in ((None, False), (True, True), (False, False)):
        options = {} if prestart is None else {"prestart_workers": prestart}
        with pytest.raises(RuntimeError, match="stop before"):
            cluster.start_ray(**options)
        config = seen["_system_config"]
        assert config.get("enable_worker_prestart", True) is expected
        assert config.get("prestart_worker_first_driver", True) is expected
        assert config["enable_output_error_log_if_still_retry"] is False, "the quiet setting stays"


def test_machine_lock_is_held_by_one_process_at_a_time_and_freed_by_a_kill():
    name = f"servekit-test-{os.getpid()}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from servekit.cluster import machine_lock\nwith machine_lock({name!r}):\n"
            "    print('held', flush=True)\n    import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with cluster.machine_lock(name, timeout_s=0.5) as got:
            assert not got, "another process holds it"
        holder.kill()  # SIGKILL: no cleanup code runs, and no file is left to go stale
        holder.wait()
        t0 = time.monotonic()
        with cluster.machine_lock(name, timeout_s=5) as got:
            assert got and time.monotonic() - t0 < 1
    finally:
        holder.kill()
        holder.wait()


def test_two_serve_starts_at_the_same_moment_get_two_ports(monkeypatch):
    """Serve's proxy binds its port inside serve.start, a moment after the port was found free: two
    notebooks starting Serve together must not both choose it. serve.start is replaced by a stand-in
    that binds the port 0.3 s later, as the proxy does."""
    import threading

    from ray import serve

    listening: list[socket.socket] = []
    failed: list[int] = []

    def fake_start(http_options, logging_config):
        time.sleep(0.3)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", http_options["port"]))
            s.listen()
            listening.append(s)
        except OSError:
            failed.append(http_options["port"])
            s.close()

    monkeypatch.setattr(serve, "start", fake_start)
    wanted = cluster.free_port(0)
    chosen: list[int] = []
    threads = [threading.Thread(target=lambda: chosen.append(cluster.start_serve(wanted))) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert wanted in chosen and len(set(chosen)) == 2 and not failed, (chosen, failed)
    finally:
        for s in listening:
            s.close()
        cluster._state.pop("port", None)
