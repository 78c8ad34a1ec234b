"""Execute solution notebooks in fresh kernels and store their outputs (then run make_notebooks.py).

Outputs are what nbval compares against, so they must come from a clean, top-to-bottom run in
the pinned environment: execution counts 1..n, kernelspec python3. Anything a kernel leaves
running is stopped by PID afterwards (and reported), as in the test suite.

Usage:  python scripts/execute_notebooks.py [solutions/NN_name.ipynb ...]   (default: all)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servekit.cleanup import become_subreaper, reap_leftovers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, timeout_s: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    t0 = time.monotonic()
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        record_timing=False,  # no per-cell timestamps: they made every re-run a diff of hundreds of lines
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in nb.cells:  # and none left over from runs made before
        cell.metadata.pop("execution", None)
    elapsed = time.monotonic() - t0
    nbformat.write(nb, path)
    left = reap_leftovers(grace_s=10)
    if left:
        print(
            f"  WARNING {path.name} left processes running after its kernel stopped: {left} (stopped by PID)"
        )
    return elapsed


def main(argv: list[str]) -> int:
    become_subreaper()
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        print(f"executing {p.relative_to(ROOT)} ...", flush=True)
        print(f"  done in {execute(p):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
