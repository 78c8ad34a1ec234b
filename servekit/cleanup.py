"""Stop processes by PID, never by name: ``pkill -f ray`` or ``ray stop`` would also kill a
learner's other Ray clusters. Used by the test plugin that guards every notebook run."""

from __future__ import annotations

import ctypes
import os
import sys
import time

import psutil

_PR_SET_CHILD_SUBREAPER = 36


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
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL what is left. Returns the ones that had to be killed."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout_s)
    return alive


def reap_leftovers(grace_s: float = 10.0) -> list[str]:
    """Give this process's descendants ``grace_s`` to exit (Ray's dashboard helpers need a
    second or two after ``ray.shutdown()``), then stop the rest by PID. Returns what was stopped."""
    deadline = time.monotonic() + grace_s
    left = descendants()
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = [p for p in descendants() if _alive(p)]
    names = describe(left)
    if left:
        kill_processes(left)
    return names


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def course_clusters(scratch: str | None = None) -> list[psutil.Process]:
    """Ray processes of this course's clusters (their command line names scratch/ray), with their
    descendants: what a crashed kernel leaves behind. Other Ray clusters on the machine are not listed."""
    from servekit.paths import SCRATCH

    marker = str(scratch or SCRATCH / "ray")
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(marker in arg for arg in p.info["cmdline"] or []):
                roots.append(p)
        except psutil.Error:
            continue
    found = {p.pid: p for p in roots}
    for p in roots:
        for child in descendants(p.pid):
            found.setdefault(child.pid, child)
    return list(found.values())


def main(argv: list[str] | None = None) -> int:
    """``python -m servekit.cleanup [--kill]``: list (or stop, by PID) clusters a crashed kernel left."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m servekit.cleanup", description=main.__doc__)
    ap.add_argument("--kill", action="store_true", help="stop them (SIGTERM, then SIGKILL)")
    args = ap.parse_args(argv)
    procs = course_clusters()
    if not procs:
        print("No Ray processes of this course are running.")
        return 0
    print("\n".join(describe(procs)))
    if args.kill:
        kill_processes(procs)
        print(f"Stopped {len(procs)} process(es) by PID.")
    else:
        print("Run again with --kill to stop them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
