"""Where the CPU went: CPU time of this process and every process it started, grouped by role.

On one machine the load-test client, Serve's HTTP proxy, the replica and the rest of Ray share
the same cores. ``with cpu_by_role() as cpu:`` around a load run tells how many cores each of
them kept busy (``cpu.cores``) and what one request cost (``cpu.ms_per_request(n)``)::

    with servekit.cpu_by_role() as cpu:
        report = await servekit.run_load_async(send, total=640, concurrency=64)
    print(cpu.cores, cpu.ms_per_request(report.total))

Processes are this one (the client: a notebook kernel is both load generator and handle caller)
and its descendants, which is every process of a cluster it started with ``ray.init``. What the
rest of the machine used meanwhile (other programs, other users) is in ``cpu.others_s``: on a
shared machine it is the first thing to look at when two runs of the same measurement disagree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

ROLES = ("replica", "HTTP proxy", "client", "rest of Ray")


def role_of(cmdline: str, is_client: bool = False) -> str:
    """The role of a process, from its command line (Ray workers retitle themselves ``ray::<Actor>``)."""
    if is_client:
        return "client"
    if cmdline.startswith("ray::ServeReplica"):
        return "replica"
    program = cmdline.split(" ", 1)[0].rsplit("/", 1)[-1]
    if cmdline.startswith(("ray::ProxyActor", "ray::HAProxyManager")) or program == "haproxy":
        return "HTTP proxy"  # Serve's Python proxy, or HAProxy and its manager actor
    return "rest of Ray"


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine spent busy since boot (not idle, not waiting for I/O)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def cpu_seconds(root: psutil.Process | None = None) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) used so far by ``root`` (default: this process) and each of
    its descendants, with the role of each, by PID. Processes that end meanwhile are skipped."""
    root = root or psutil.Process()
    used = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            title, times = " ".join(proc.cmdline()), proc.cpu_times()
        except psutil.Error:
            continue
        used[proc.pid] = (role_of(title, proc.pid == root.pid), times.user + times.system)
    return used


@dataclass
class CpuUse:
    """CPU seconds each role used during a ``cpu_by_role()`` block, and the block's wall time."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ROLES, 0.0))
    wall_s: float = 0.0
    others_s: float = 0.0  # CPU seconds the machine's other processes used meanwhile

    @property
    def cores(self) -> dict[str, float]:
        """Cores each role kept busy: CPU seconds per second of wall time."""
        return {role: s / self.wall_s if self.wall_s > 0 else 0.0 for role, s in self.seconds.items()}

    def ms_per_request(self, requests: int) -> dict[str, float]:
        """CPU milliseconds per request by role, plus ``"total"``."""
        per = {role: 1000 * s / requests for role, s in self.seconds.items()}
        return {**per, "total": sum(per.values())}


@contextlib.contextmanager
def cpu_by_role(root: psutil.Process | None = None) -> Iterator[CpuUse]:
    """Measure the CPU used by role while the block runs (see the module docstring).

    A process that starts during the block counts in full; one that ends during it is lost.
    """
    before, busy, start = cpu_seconds(root), machine_busy_s(), time.perf_counter()
    use = CpuUse()
    yield use
    after = cpu_seconds(root)
    use.wall_s = time.perf_counter() - start
    for pid, (role, seconds) in after.items():
        use.seconds[role] += max(0.0, seconds - before.get(pid, (role, 0.0))[1])
    use.others_s = max(0.0, machine_busy_s() - busy - sum(use.seconds.values()))
