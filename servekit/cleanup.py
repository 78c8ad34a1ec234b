"""Find and stop this course's Ray clusters by PID, never by name: ``pkill -f ray`` or ``ray stop``
would also kill a learner's other Ray clusters. Used by ``python -m servekit.cleanup`` and by the
test plugin that guards every notebook run.

How a cluster is found. A SIGKILLed kernel leaves Ray's ``DashboardAgent`` and ``RuntimeEnvAgent``
running with rewritten process titles (and their environment overwritten by the title), so neither
the command line nor the environment names the cluster. What every Ray process keeps is its log
files, open under the cluster's session folder (``<temp dir>/session_*/logs``). The kit's temp dirs
are ``scratch/ray`` or, for long checkout paths, ``/tmp/servekit-ray-*`` (``cluster.ray_temp_dir``).
Each ``start_ray`` also records the driver and the Ray processes it sees in a registry file in its
temp dir; its PIDs count only while their start time matches, so a recycled PID is never touched.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_PR_SET_CHILD_SUBREAPER = 36
REGISTRY_PREFIX = "servekit-cluster-"
_DRIVER_LOG_PREFIX = "python-core-driver-"  # a driver (kernel) holds this log open: never stopped


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux), so that processes a dead kernel
    left behind (raylet, gcs_server, workers) stay findable as our descendants."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """All living descendants of ``pid`` (default: this process)."""
    try:
        return psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {p.name()}")
        except psutil.Error:
            out.append(f"{p.pid} <gone>")
    return out


def kill_processes(procs: list[psutil.Process], timeout_s: float = 5.0) -> list[psutil.Process]:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL what is left. Returns those that needed SIGKILL.
    A zombie counts as stopped: its parent (init, or a subreaper such as pytest here) reaps it."""
    stubborn = _signal_and_wait(procs, psutil.Process.terminate, timeout_s)
    _signal_and_wait(stubborn, psutil.Process.kill, timeout_s)
    psutil.wait_procs(procs, timeout=0.1)  # reap the ones that are our own children
    return stubborn


def _signal_and_wait(procs: list[psutil.Process], send, timeout_s: float) -> list[psutil.Process]:
    for p in procs:
        try:
            send(p)
        except psutil.Error:
            pass
    deadline = time.monotonic() + timeout_s
    left = [p for p in procs if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


def still_running(
    find: Callable[[], list[psutil.Process]], grace_s: float, poll_s: float = 0.25
) -> list[psutil.Process]:
    """Call ``find()`` every ``poll_s`` seconds until none of the processes it returns is alive or
    ``grace_s`` has passed; returns the living ones it found last."""
    deadline = time.monotonic() + grace_s
    left = [p for p in find() if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(poll_s)
        left = [p for p in find() if alive(p)]
    return left


def reap_leftovers(grace_s: float = 10.0) -> list[str]:
    """Give this process's descendants ``grace_s`` to exit (Ray's dashboard helpers need a
    second or two after ``ray.shutdown()``), then stop the rest by PID. Returns what was stopped."""
    left = still_running(descendants, grace_s)
    names = describe(left)
    if left:
        kill_processes(left)
    return names


def alive(p: psutil.Process) -> bool:
    """Running: neither gone nor a zombie (a zombie has exited; only its exit status is left)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The living process ``pid`` if it is still the one that started at ``create_time``."""
    try:
        p = psutil.Process(pid)
        return p if abs(p.create_time() - create_time) < 0.01 and alive(p) else None
    except psutil.Error:
        return None


def _stamp(p: psutil.Process) -> list[float]:
    return [p.pid, p.create_time()]


def record_cluster(temp_dir: Path, session_dir: str | None = None) -> Path:
    """Write (or rewrite) this driver's registry file in ``temp_dir``: the driver, the session
    folder, and the Ray processes it started (children with a file open in the session folder,
    and their descendants), each with its start time. Other children (a learner's own
    subprocesses) are not recorded."""
    me = psutil.Process()
    entry: dict = {"driver": _stamp(me), "session_dir": session_dir, "pids": []}
    for child in me.children() if session_dir else []:
        try:
            if any(_session_of(f.path, [Path(temp_dir)]) == Path(session_dir) for f in child.open_files()):
                entry["pids"] += [_stamp(p) for p in [child, *child.children(recursive=True)]]
        except psutil.Error:
            continue
    path = Path(temp_dir) / f"{REGISTRY_PREFIX}{me.pid}.json"
    path.write_text(json.dumps(entry))
    return path


@dataclass
class Cluster:
    """A course cluster: its session folder, its Ray processes, and its driver if that still runs."""

    session_dir: Path
    processes: dict[int, psutil.Process] = field(default_factory=dict)
    live_driver: int | None = None


def course_temp_dirs() -> list[Path]:
    """Every temp dir the kit gives Ray: ``scratch/ray`` and the fallback ``/tmp/servekit-ray-*``."""
    from servekit import cluster
    from servekit.paths import SCRATCH

    dirs = [SCRATCH / "ray"] + sorted(cluster.FALLBACK_PARENT.glob(f"{cluster.FALLBACK_PREFIX}*"))
    return [d for d in dirs if d.is_dir() and not d.is_symlink() and d.stat().st_uid == os.getuid()]


def _session_of(path: str, temp_dirs: list[Path]) -> Path | None:
    for d in temp_dirs:
        prefix = f"{d}{os.sep}"
        if path.startswith(prefix):
            return d / path[len(prefix) :].split(os.sep, 1)[0]
    return None


def find_clusters(temp_dirs: list[Path] | None = None) -> list[Cluster]:
    """The course clusters with processes still running under ``temp_dirs`` (default: all of them).

    A process belongs to a cluster when it holds a file open in the cluster's session folder, when a
    registry names it (same PID and start time), or when it descends from such a process.
    """
    temp_dirs = [Path(d) for d in (course_temp_dirs() if temp_dirs is None else temp_dirs)]
    clusters: dict[Path, Cluster] = {}
    drivers: set[int] = set()
    me = psutil.Process()
    skip = {me.pid} | {p.pid for p in me.parents()}  # never this process nor what runs it
    for p in psutil.process_iter():
        if p.pid in skip:
            continue
        try:
            files = [f.path for f in p.open_files()]
        except psutil.Error:
            continue
        for path in files:
            session = _session_of(path, temp_dirs)
            if session is not None:
                c = clusters.setdefault(session, Cluster(session))
                if os.path.basename(path).startswith(_DRIVER_LOG_PREFIX):
                    c.live_driver = p.pid
                    drivers.add(p.pid)
                else:
                    c.processes[p.pid] = p
    for d in temp_dirs:
        for reg in d.glob(f"{REGISTRY_PREFIX}*.json"):
            entry = _read_registry(reg)
            if not entry or not entry.get("session_dir"):
                continue
            c = clusters.setdefault(Path(entry["session_dir"]), Cluster(Path(entry["session_dir"])))
            if _same_process(*entry["driver"]):
                c.live_driver = c.live_driver or entry["driver"][0]
                drivers.add(entry["driver"][0])
            for pid, created in entry["pids"]:
                if (p := _same_process(pid, created)) is not None:
                    c.processes.setdefault(pid, p)
    for c in clusters.values():
        for p in list(c.processes.values()):
            for child in descendants(p.pid):
                c.processes.setdefault(child.pid, child)
        for pid in (drivers | skip) & c.processes.keys():
            del c.processes[pid]  # never stop a driver: it is a learner's kernel or script
    return [c for c in clusters.values() if c.processes]


def _read_registry(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stale_temp_dirs(temp_dirs: list[Path] | None = None) -> list[Path]:
    """Fallback temp dirs the kit made whose cluster is gone: no process holds a file in them,
    and the driver their registry names is not running (a kernel that shut Ray down keeps its
    folder until it exits). A folder without a registry qualifies only if it holds nothing but
    Ray session folders, as the kit's folders from before the registry do."""
    from servekit import cluster

    temp_dirs = [Path(d) for d in (course_temp_dirs() if temp_dirs is None else temp_dirs)]
    fallbacks = [d for d in temp_dirs if d.name.startswith(cluster.FALLBACK_PREFIX)]
    busy = {c.session_dir.parent for c in find_clusters(fallbacks)}
    stale = []
    for d in fallbacks:
        registries = [_read_registry(r) for r in d.glob(f"{REGISTRY_PREFIX}*.json")]
        if d in busy or any(r and _same_process(*r["driver"]) for r in registries):
            continue
        if registries or all(e.name.startswith("session_") for e in d.iterdir()):
            stale.append(d)
    return stale


def forget_dead_registries(temp_dirs: list[Path] | None = None) -> None:
    """Remove registry files whose driver is gone and whose cluster has no process left."""
    temp_dirs = [Path(d) for d in (course_temp_dirs() if temp_dirs is None else temp_dirs)]
    busy = {c.session_dir for c in find_clusters(temp_dirs)}
    for d in temp_dirs:
        for reg in d.glob(f"{REGISTRY_PREFIX}*.json"):
            entry = _read_registry(reg)
            if entry and (_same_process(*entry["driver"]) or Path(entry["session_dir"] or "") in busy):
                continue
            reg.unlink(missing_ok=True)


def remove_stale(temp_dirs: list[Path] | None = None) -> list[Path]:
    """Remove the fallback folders and registry files of clusters that are gone (nbval, like any
    SIGKILL, stops a kernel before its exit handler can). Returns the folders removed."""
    stale = stale_temp_dirs(temp_dirs)
    for d in stale:
        shutil.rmtree(d, ignore_errors=True)
    forget_dead_registries(temp_dirs)
    return stale


def main(argv: list[str] | None = None) -> int:
    """``python -m servekit.cleanup [--kill]``: list (or stop, by PID) the course's Ray clusters,
    and remove the temp session folders of clusters that are gone."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m servekit.cleanup", description=main.__doc__)
    ap.add_argument(
        "--kill",
        action="store_true",
        help="stop the clusters whose kernel is gone (SIGTERM, then SIGKILL) and remove stale folders",
    )
    ap.add_argument(
        "--all", action="store_true", help="with --kill: also stop clusters whose kernel still runs"
    )
    args = ap.parse_args(argv)
    clusters = find_clusters()
    for c in clusters:
        driver = f"its kernel/driver {c.live_driver} still runs" if c.live_driver else "its kernel is gone"
        print(f"Ray cluster {c.session_dir} ({driver}):")
        print("\n".join(f"  {line}" for line in describe(list(c.processes.values()))))
    if not clusters:
        print("No Ray processes of this course are running.")
    if args.kill:
        # A cluster whose kernel still runs is another lesson's (or test run's) live work: spared
        # unless asked for, so that cleaning up after a crash never breaks a notebook still open.
        spared = [c for c in clusters if c.live_driver and not args.all]
        procs = [p for c in clusters if c not in spared for p in c.processes.values()]
        kill_processes(procs)
        if procs:
            print(f"Stopped {len(procs)} process(es) by PID.")
        for c in spared:
            print(
                f"Left running: {c.session_dir} (its kernel {c.live_driver} still runs; --all stops it too)"
            )
        for d in remove_stale():
            print(f"Removed {d}")
    else:
        stale = stale_temp_dirs()
        for d in stale:
            print(f"Stale session folder (its cluster is gone): {d}")
        if clusters or stale:
            print("Run again with --kill to stop them by PID and remove stale folders.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
