"""What a submission started, found and stopped by PID (never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psutil

from servekit import cluster as _cluster
from servekit.cleanup import alive, descendants, describe, find_clusters, kill_processes, remove_stale
from servekit.grader.report import Report


def new_descendants(before: set[int], exclude: set[int]) -> list[psutil.Process]:
    """This process's living descendants that were not there before the submission ran. The grader
    is a child subreaper, so anything a kernel started stays its descendant, orphaned or not."""
    return [p for p in descendants() if p.pid not in before and p.pid not in exclude and alive(p)]


def fallback_dirs(scratch: Path) -> set[Path]:
    """The kit's ``/tmp/servekit-ray-*`` session folders (used when scratch/ray is too long a path) of
    a notebook whose scratch folder is ``scratch``: never another run's, which may be live."""
    return set(_cluster.FALLBACK_PARENT.glob(f"{_cluster.fallback_prefix(scratch)}*"))


def submission_processes(before: set[int], exclude: set[int], ray_dirs: list[Path]) -> list[psutil.Process]:
    """What the submission started and still runs: new descendants of this process, and the Ray
    processes with files open in its session folders (``ray_dirs``), whoever their parent is."""
    procs = {p.pid: p for p in new_descendants(before, exclude)}
    ray_dirs = [d for d in ray_dirs if d.is_dir()]
    if ray_dirs:
        for cluster in find_clusters(ray_dirs):
            for pid, p in cluster.processes.items():
                if pid not in exclude and alive(p):
                    procs.setdefault(pid, p)
            if cluster.live_driver and cluster.live_driver not in exclude:
                with contextlib.suppress(psutil.Error):
                    procs.setdefault(cluster.live_driver, psutil.Process(cluster.live_driver))
    return list(procs.values())


def kill_group(pid: int | None) -> None:
    """SIGKILL the process group that ``pid`` leads (the worker's, the kernel's), unless it is ours."""
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        pgid = os.getpgid(pid)
        if pgid != os.getpgid(0):
            os.killpg(pgid, signal.SIGKILL)


def reap(before: set[int]) -> None:
    """Collect the exit status of zombies the submission left as this process's children (orphans
    adopted by the subreaper), by PID, so that none stays in the process table."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            if child.pid not in before and child.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(child.pid, os.WNOHANG)


def teardown(
    worker: subprocess.Popen[str],
    kernel_pid: int | None,
    before: set[int],
    ray_dirs: list[Path],
    report: Report,
    finished: bool,
) -> list[str]:
    """Stop the worker, the kernel and everything they started, by PID; returns what had to be stopped
    here (beyond the worker and the kernel themselves)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=10 if finished else 0.1)  # a worker that sent "done" is exiting
    exclude = {worker.pid} | ({kernel_pid} if kernel_pid else set())
    leftovers = submission_processes(before, exclude, ray_dirs)
    names = describe(leftovers)
    kill_group(worker.pid)
    kill_group(kernel_pid)
    targets = submission_processes(before, set(), ray_dirs)
    kill_processes(targets, timeout_s=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=5)
    remaining = submission_processes(before, set(), ray_dirs)
    reap(before)
    remove_stale([d for d in ray_dirs if d.name.startswith(_cluster.FALLBACK_PREFIX)])
    if remaining:
        report.teardown_clean = False
        report.execution["not_stopped"] = describe(remaining)
    return names
