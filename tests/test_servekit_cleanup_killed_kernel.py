"""A kernel SIGKILLed while its Serve app is up (the OOM killer, a forced restart) leaves part of its
Ray cluster running. ``python -m servekit.cleanup --kill`` must find and stop every process of that
cluster, and remove its fallback session folder, in both path cases - and leave a Ray cluster the
kit did not start alone. These tests start Ray: run them under ``flock /tmp/ray.lock``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from servekit import cleanup
from servekit.cluster import free_port
from servekit.paths import REPO_ROOT

KERNEL_CODE = """
import json, os, urllib.request
import psutil, servekit
from ray import serve

ctx = servekit.start_ray(num_cpus=1)
servekit.start_serve(port=servekit.free_port(8000), access_log=False)

@serve.deployment
class Echo:
    def __call__(self, request):
        return "ok"

serve.run(Echo.bind(), name="echo", route_prefix="/echo")
url = servekit.serve_url("/echo")
print(json.dumps({"url": url, "pid": os.getpid(), "session_dir": ctx.address_info["session_dir"],
                  "answer": urllib.request.urlopen(url, timeout=10).read().decode()}))
"""


def _run_in_kernel(env: dict[str, str]):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(REPO_ROOT))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(KERNEL_CODE, timeout=90, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return km, kc, json.loads("".join(out).strip().splitlines()[-1])


def _alive(stamps: list[tuple[int, float]]) -> list[int]:
    return [pid for pid, created in stamps if cleanup._same_process(pid, created)]


def _start_own_cluster(temp_dir: Path, env: dict[str, str]) -> list[psutil.Process]:
    """A learner's own `ray start` cluster (its own temp dir), which the cleanup must not touch."""
    ray_cli = Path(sys.executable).with_name("ray")
    cmd = [str(ray_cli), "start", "--head", f"--port={free_port(6391)}", f"--temp-dir={temp_dir}"]
    cmd += ["--num-cpus=1", "--include-dashboard=false", "--dashboard-agent-listen-port=0"]
    subprocess.run(cmd + ["--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=60)
    procs = [p for c in cleanup.find_clusters([temp_dir]) for p in c.processes.values()]
    assert procs, "the learner's own cluster did not start"
    return procs


@pytest.mark.parametrize("case", ["short_path", "fallback"])
def test_cleanup_stops_every_process_of_a_killed_kernels_cluster(case: str, tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="skc-", dir="/tmp"))  # short enough for scratch/ray
    scratch = base / "scratch" if case == "short_path" else tmp_path / ("x" * 90) / "scratch"
    token = os.urandom(16).hex()
    env = {
        **os.environ,
        "SERVEKIT_SCRATCH": str(scratch),
        "PYTHONPATH": str(REPO_ROOT),
        "RAY_AUTH_TOKEN": token,
    }
    km = kc = None
    observed: list[tuple[int, float]] = []
    own: list[psutil.Process] = []
    try:
        if case == "short_path":
            own = _start_own_cluster(base / "own", env)
        km, kc, info = _run_in_kernel(env)
        session = Path(info["session_dir"])
        temp_dir = session.parent
        assert info["answer"] == "ok"
        assert urllib.request.urlopen(info["url"], timeout=10).read() == b"ok"
        if case == "short_path":
            assert temp_dir == scratch / "ray"
        else:
            assert temp_dir.name.startswith("servekit-ray-") and temp_dir.parent == Path("/tmp")
        kernel = psutil.Process(info["pid"])
        observed = [(p.pid, p.create_time()) for p in kernel.children(recursive=True)]
        assert len(observed) >= 7, observed  # gcs, raylet, two agents, controller, proxy, replica

        listing = subprocess.run(
            [sys.executable, "-m", "servekit.cleanup"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
        assert f"{info['pid']} still runs" in listing and f"  {info['pid']} " not in listing, listing
        assert all(f"  {pid} " in listing for pid, _ in observed), listing  # a live app is found too

        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=10)
        time.sleep(3)  # what dies with the kernel has died by now
        survivors = _alive(observed)
        print(f"{case}: {len(observed)} Ray processes, {len(survivors)} still alive after the kill")

        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "servekit.cleanup", "--kill"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(done.stdout, done.stderr, f"cleanup took {time.monotonic() - started:.1f} s")
        assert done.returncode == 0
        for pid in survivors:
            assert f"  {pid} " in done.stdout, f"{pid} not listed"
        assert _alive(observed) == [], "processes of the killed kernel's cluster are still running"
        assert not list(temp_dir.glob(f"{cleanup.REGISTRY_PREFIX}*")), "registry file left behind"
        if case == "fallback":
            assert not temp_dir.exists(), "fallback session folder left behind"
            assert f"Removed {temp_dir}" in done.stdout
        if own:
            assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in own), "own cluster hit"
    finally:
        if kc is not None:
            kc.stop_channels()
        if km is not None:
            km.cleanup_resources()
        leftovers = [psutil.Process(pid) for pid in _alive(observed)] + own
        cleanup.kill_processes([p for p in leftovers if p.is_running()], timeout_s=5)
        psutil.wait_procs([p for p in psutil.Process().children() if not cleanup.alive(p)], timeout=1)
        shutil.rmtree(base, ignore_errors=True)
