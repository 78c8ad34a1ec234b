"""A memory cap like Binder's around a notebook's kernel and everything it starts: a memory cgroup.

Binder gives a session 2 GB for everything (Jupyter server, kernel, Ray, servers), enforced by a memory
cgroup without swap: past it the kernel's OOM killer ends a process. :class:`MemoryCap` makes such a
cgroup under this process's own (cgroup v2, or v1's memory controller, whichever the machine mounts;
root needed), moves a process into it (what that process starts later joins it), and reads back the
peak and the number of OOM kills. Page cache is charged to a cgroup too, but the kernel reclaims it
before it kills, so the peak read back is an upper bound of what the notebook needed.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

GiB = 2**30
CGROUP_ROOT = Path("/sys/fs/cgroup")


class MemoryCapUnavailable(RuntimeError):
    """No memory cgroup can be made here (not root, no memory controller, a read-only cgroupfs)."""


def _own_cgroup() -> tuple[int, Path]:
    """(version, folder) of this process's memory cgroup: v1's memory controller when it is mounted
    on its own, else the v2 hierarchy when its root offers the memory controller."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    v1 = next((ln.split(":", 2)[2] for ln in lines if ln.split(":", 2)[1] == "memory"), None)
    if v1 is not None and (CGROUP_ROOT / "memory").is_dir():
        return 1, CGROUP_ROOT / "memory" / v1.lstrip("/")
    v2 = next((ln.split(":", 2)[2] for ln in lines if ln.startswith("0::")), None)
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        controllers = mount / "cgroup.controllers"
        if v2 is not None and controllers.exists() and "memory" in controllers.read_text().split():
            return 2, mount / v2.lstrip("/")
    raise MemoryCapUnavailable("no memory cgroup controller is mounted (neither cgroup v1 nor v2)")


@dataclass
class MemoryCap:
    """A memory cgroup with a hard limit and no swap; :meth:`create` it, :meth:`add` processes."""

    path: Path
    version: int
    limit: int

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> MemoryCap:
        """A new cgroup ``name`` under this process's own, limited to ``limit_bytes`` (swap included)."""
        try:
            version, parent = _own_cgroup()
            path = parent / name
            path.mkdir()
        except (OSError, MemoryCapUnavailable) as exc:
            raise MemoryCapUnavailable(f"cannot make a memory cgroup: {exc}") from exc
        cap = cls(path, version, limit_bytes)
        try:
            if version == 1:
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                with contextlib.suppress(OSError):  # absent when the kernel has no swap accounting
                    (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
                with contextlib.suppress(OSError):  # what the process used before the move counts too
                    (path / "memory.move_charge_at_immigrate").write_text("3")
            else:
                (path / "memory.max").write_text(str(limit_bytes))
                with contextlib.suppress(OSError):
                    (path / "memory.swap.max").write_text("0")
        except OSError as exc:
            cap.remove()
            raise MemoryCapUnavailable(f"cannot set a memory limit on {path}: {exc}") from exc
        return cap

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cgroup; the processes it starts from now on are born in it."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        with contextlib.suppress(OSError):
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        return []

    def peak(self) -> int:
        """The most memory charged to the cgroup at once, in bytes (0 where the kernel does not say)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / name).read_text())
        return 0

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            found = re.search(r"^oom_kill (\d+)", (self.path / name).read_text(), re.M)
            return int(found.group(1)) if found else 0
        return 0

    def remove(self) -> None:
        """Move what is left back to the parent cgroup, then remove the cgroup (never kills anything)."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                (self.path.parent / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
