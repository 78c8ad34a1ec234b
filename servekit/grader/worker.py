"""``python -m servekit.grader.worker``: runs one notebook for the grader, in its own process.

The job comes as one JSON line on stdin; messages go back as JSON lines on the original stdout
(everything the notebook prints lands on stderr); a line ``go`` on stdin lets it go on past the
check point and past the cleanup cells. :class:`Channel` reads those messages in the grader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from servekit.grader.probe import probe_output


class Channel:
    """JSON lines from the worker's private pipe, read in a thread so waits can have deadlines."""

    def __init__(self, stream: IO[str]):
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.progress: dict[str, Any] = {}  # the last "cell" message: which cell runs, how many ran before it
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("phase") == "cell":
                    self.progress = msg
                else:
                    self.messages.put(msg)
        self.messages.put({"phase": "eof"})

    def wait(self, phase: str, timeout_s: float) -> dict[str, Any] | None:
        """The next message of ``phase`` (others are dropped); None at the deadline or when the worker
        closed its end."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                return None
            if msg.get("phase") == phase:
                return msg
            if msg.get("phase") == "eof":
                return None
        return None


def main() -> int:
    """``python -m servekit.grader.worker``: run one notebook for the grader (job as JSON on stdin).

    Messages go out on the original stdout; everything else printed lands on stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    job = json.loads(sys.stdin.readline())

    def send(phase: str, **data: Any) -> None:
        out.write(json.dumps({"phase": phase, **data}) + "\n")

    def wait_for_go() -> None:
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(0)  # the grader went away

    asyncio.run(_run_notebook(job, send, wait_for_go))
    return 0


def _cell_errors() -> tuple[type[Exception], ...]:
    """What nbclient raises for a cell that failed, timed out or lost its kernel (imported when needed:
    the grader's own process, which imports this module for :class:`Channel`, need not load nbclient)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    return (CellExecutionError, CellTimeoutError, DeadKernelError)


async def _run_notebook(
    job: dict[str, Any], send: Callable[..., None], wait_for_go: Callable[[], None]
) -> None:
    """Run the cells up to the cleanup cells, the probe (then ``live``), and on ``go`` the cleanup cells
    (then ``cleaned``); on the next ``go`` write ``executed.ipynb`` and send ``done``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(job["notebook"], as_version=4)
    deadline: list[float] = [time.monotonic() + 10**9]  # set once the kernel is up

    def timeout_for(cell: Any) -> int:
        if cell.metadata.get("grader") == "cleanup":
            return job["cleanup_timeout_s"]
        if cell.metadata.get("grader") == "probe":
            return job["probe_timeout_s"]
        return max(1, int(min(job["cell_timeout_s"], deadline[0] - time.monotonic())))

    client = NotebookClient(
        nb,
        timeout_func=timeout_for,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "Timeout", "evalue": "the cell ran past its time limit", "traceback": []},
        kernel_name="python3",
        startup_timeout=job["startup_timeout_s"],
        record_timing=False,
        resources={"metadata": {"path": job["workdir"]}},
    )
    # before_checks, after_checks: the cells run on each side of the checks, in order
    state: dict[str, Any] = {
        "ran": True,
        "cells_run": 0,
        "error": None,
        "before_checks": [],
        "after_checks": [],
    }
    async with client.async_setup_kernel():
        send("started", kernel_pid=getattr(client.km.provisioner, "pid", None))
        deadline[0] = time.monotonic() + job["timeout_s"]
        await _run_cells(client, nb, job, state, deadline[0], send)
        probe_result = await _run_probe(client, nb, job, state)
        send("live", state=state, probe=probe_result)
        wait_for_go()
        await _run_cleanup(client, nb, job["cleanup"], state)
        send("cleaned", state=state)
        wait_for_go()
    nbformat.write(nb, Path(job["workdir"]) / "executed.ipynb")
    send("done")


async def _run_cells(
    client: Any,
    nb: Any,
    job: dict[str, Any],
    state: dict[str, Any],
    deadline: float,
    send: Callable[..., None],
) -> None:
    """The cells before the cleanup cells, as "Run All": stop at the first error (an error in a cell
    tagged raises-exception is output, not an exception, and is noted); ``# NBVAL_SKIP`` cells skipped."""
    for i in range(job["stop"]):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        if cell.source.lstrip().startswith("# NBVAL_SKIP"):  # an optional, long measurement
            state.setdefault("skipped", []).append(i)
            continue
        send("cell", index=i, done=state["cells_run"])
        state["before_checks"].append(i)
        try:
            await client.async_execute_cell(cell, i)
            state["cells_run"] += 1
            for out in cell.outputs:  # an error in a cell tagged raises-exception: the notebook went on
                if out.get("output_type") == "error":
                    evalue = str(out.get("evalue", ""))[:300]
                    state.setdefault("allowed_errors", []).append(
                        {"cell": i, "ename": out.get("ename", ""), "evalue": evalue}
                    )
        except _cell_errors() as exc:
            ename = getattr(exc, "ename", type(exc).__name__)
            evalue = getattr(exc, "evalue", str(exc).splitlines()[0] if str(exc) else "")
            if ename == "Timeout" and time.monotonic() >= deadline - 2:
                state["timed_out"] = True
                evalue = f"the notebook ran past its {job['timeout_s']} s limit in this cell"
            elif ename == "Timeout":
                evalue = f"the cell ran past its {job['cell_timeout_s']} s limit"
            state["error"] = {"cell": i, "ename": ename, "evalue": str(evalue)[:500]}
            break


async def _run_probe(client: Any, nb: Any, job: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Run the injected cell (not kept in the notebook); the JSON it printed after the nonce, or None."""
    import nbformat

    probe = nbformat.v4.new_code_cell(job["probe"], metadata={"grader": "probe"})
    nb.cells.append(probe)
    try:
        await client.async_execute_cell(probe, len(nb.cells) - 1)
    except Exception as exc:  # noqa: BLE001 - reported, the checks then fail with this reason
        state["probe_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    nb.cells.pop()
    return probe_output(probe.outputs, job["nonce"])


async def _run_cleanup(client: Any, nb: Any, cleanup: list[int], state: dict[str, Any]) -> None:
    """Every cleanup cell, each with the cleanup time limit, whatever the ones before it did."""
    state["cleanup_errors"] = []
    for i in cleanup:
        nb.cells[i].metadata["grader"] = "cleanup"
        state["after_checks"].append(i)
        try:
            await client.async_execute_cell(nb.cells[i], i)
        except _cell_errors() as exc:
            ename = getattr(exc, "ename", type(exc).__name__)
            state["cleanup_errors"].append(
                {"cell": i, "ename": ename, "evalue": str(getattr(exc, "evalue", ""))}
            )
        finally:
            del nb.cells[i].metadata["grader"]


if __name__ == "__main__":
    sys.exit(main())
