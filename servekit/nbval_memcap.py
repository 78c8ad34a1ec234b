"""Every notebook nbval runs gets Binder's memory: a pytest plugin that caps each kernel's memory cgroup.

Binder gives a session 2 GB for everything, enforced by a memory cgroup without swap. Here each
notebook's kernel is moved into its own :class:`~servekit.memcap.MemoryCap` right after nbval starts
it, so Ray, Serve's replicas and every server the notebook starts are born inside the same cap. When
the notebook ends, the cap's peak is recorded (the table at the end of the run) and an out-of-memory
kill inside it fails the notebook with its name and peak. Where no memory cgroup can be made (not
root, no memory controller) the run goes on uncapped and says so once at the end.

Lesson 09 runs a real two-node cluster (two ``ray start`` nodes) that needs about 3.5 GiB: it gets a
larger cap, named in the table, until a one-node variant fits Binder (issue 30).

The root conftest.py installs it; a run without the conftests uses ``-p servekit.nbval_memcap``.
"""

from __future__ import annotations

import pytest

from servekit.memcap import GiB, MemoryCap, MemoryCapUnavailable

BINDER_BYTES = 2 * GiB
#: notebooks that cannot fit Binder yet: their cap, and why
OVER_BINDER: dict[str, tuple[int, str]] = {
    "09_production.ipynb": (5 * GiB, "two `ray start` nodes need about 3.5 GiB"),
}
_STATE = pytest.StashKey[dict]()


def limit_for(notebook_name: str) -> int:
    return OVER_BINDER.get(notebook_name, (BINDER_BYTES, ""))[0]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = {"caps": {}, "pids": {}, "peaks": {}, "unavailable": None}


def _is_notebook_item(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def _kernel_pid(item: pytest.Item) -> int | None:
    kernel = getattr(item.parent, "kernel", None)
    process = getattr(getattr(getattr(kernel, "km", None), "provisioner", None), "process", None)
    return getattr(process, "pid", None)


def _cap_kernel(item: pytest.Item) -> None:
    state, key = item.config.stash[_STATE], item.parent.nodeid
    pid = _kernel_pid(item)
    if pid is None or state["unavailable"] or state["pids"].get(key) == pid:
        return
    cap = state["caps"].get(key)
    try:
        if cap is None:
            name = f"nbval-{pid}-{item.path.stem[:40]}"
            cap = state["caps"][key] = MemoryCap.create(name, limit_for(item.path.name))
        cap.add(pid)  # a restarted kernel joins the same cap
    except (MemoryCapUnavailable, OSError) as exc:
        state["unavailable"] = str(exc)
        return
    state["pids"][key] = pid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    result = yield  # nbval starts the notebook's kernel in the setup of its first cell
    if _is_notebook_item(item):
        _cap_kernel(item)
    return result


def _finish(item: pytest.Item) -> str | None:
    """Read back and remove the notebook's cap; why it fails, or None."""
    state = item.config.stash[_STATE]
    cap: MemoryCap | None = state["caps"].pop(item.parent.nodeid, None)
    state["pids"].pop(item.parent.nodeid, None)
    if cap is None:
        return None
    peak, kills = cap.peak(), cap.oom_kills()
    cap.remove()
    state["peaks"][item.parent.nodeid] = (peak, cap.limit, kills)
    if not kills:
        return None
    return (
        f"{item.path.name}: the out-of-memory killer ended {kills} process(es) inside its "
        f"{cap.limit / GiB:g} GiB memory cap (Binder gives 2 GiB); peak {peak / GiB:.2f} GiB"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the kernel and its leftovers are gone
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    last = _is_notebook_item(item) and (nextitem is None or nextitem.parent is not item.parent)
    try:
        result = yield
    except BaseException:
        if last:
            _finish(item)  # the other failure is reported; the peak still goes into the table
        raise
    if last and (why := _finish(item)):
        raise pytest.fail.Exception(why, pytrace=False)
    return result


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if state["unavailable"]:
        terminalreporter.write_line(f"notebooks ran without a memory cap: {state['unavailable']}")
    if state["peaks"]:
        terminalreporter.write_sep("=", "peak memory per notebook (its memory cgroup, page cache included)")
        for nodeid, (peak, limit, kills) in sorted(state["peaks"].items(), key=lambda kv: -kv[1][0]):
            note = f"  cap {limit / GiB:g} GiB" + (f", {kills} OOM kill(s)" if kills else "")
            terminalreporter.write_line(f"{peak / GiB:6.2f} GiB  {nodeid}{note}")
