"""Generate the learner notebooks (notebooks/) from the solutions (solutions/, the source).

Conventions (nbgrader's markers, checked here):
* An exercise is a code cell with nbgrader metadata ``solution: true`` whose code lies between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``. The region sits inside a function the
  learner completes, so defining it never fails; it becomes ``# YOUR CODE HERE`` +
  ``raise NotImplementedError()``.
* The next code cell is the exercise's check (nbgrader ``grade: true``). It calls the
  function first, so in the learner copy it fails with NotImplementedError until the
  exercise is done: it is tagged ``raises-exception`` and stores exactly that error, which
  strict nbval then expects. Every other cell keeps the solution's outputs, so running
  the learner notebook under nbval also proves no later cell depends on an exercise.

Usage:  python scripts/make_notebooks.py           write notebooks/
        python scripts/make_notebooks.py --check   exit 1 if notebooks/ is not up to date
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, NOTEBOOKS = ROOT / "solutions", ROOT / "notebooks"
REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)
STUB = "{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n"
CHECK_ERROR = nbformat.v4.new_output(
    "error",
    ename="NotImplementedError",
    evalue="",
    traceback=[
        "NotImplementedError: this check calls your code; it passes once you finish the exercise above."
    ],
)


class ConventionError(ValueError):
    pass


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def learner_copy(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    out = copy.deepcopy(nb)
    cells = out.cells
    for cell in cells:
        cell.metadata.pop("execution", None)  # run timestamps are noise in a learner's copy
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
            continue
        where = f"{name} cell {i}"
        if not _nbgrader(cell).get("solution"):
            raise ConventionError(f"{where}: exercise cell lacks nbgrader metadata with solution: true")
        regions = list(REGION.finditer(cell.source))
        if not regions or cell.source.count("### BEGIN SOLUTION") != len(regions):
            raise ConventionError(f"{where}: unmatched ### BEGIN SOLUTION / ### END SOLUTION")
        if any(not m.group(1) for m in regions):
            raise ConventionError(
                f"{where}: put the solution inside a function (indented), so the stub cell runs"
            )
        if cell.outputs:
            raise ConventionError(
                f"{where}: an exercise cell must not print (its learner stub prints nothing)"
            )
        cell.source = REGION.sub(lambda m: STUB.format(indent=m.group(1)), cell.source).rstrip("\n")
        check = next((c for c in cells[i + 1 :] if c.cell_type == "code"), None)
        if check is None or not _nbgrader(check).get("grade"):
            raise ConventionError(f"{where}: the next code cell must be its check (nbgrader grade: true)")
        tags = check.metadata.setdefault("tags", [])
        if "raises-exception" not in tags:
            tags.append("raises-exception")
        check.outputs = [copy.deepcopy(CHECK_ERROR)]
    return out


README = """\
# Learner notebooks (generated: do not edit here)

These are the course's lessons as you work through them. Every file in this folder is written by
`scripts/make_notebooks.py` from the notebook of the same name in `../solutions/`, the one source that
authors edit (`make notebooks` regenerates this folder; a test fails when the two drift). Changes made
here are lost at the next regeneration: edit `solutions/`, then run `make notebooks`.

What you see when you open a lesson:
* **Stored outputs.** Every cell already shows the output of the last full run of the lesson in the
  pinned environment. CI re-runs each notebook and compares its outputs with these (strict nbval), so
  they are what you should see too, up to timings, ports and ids. Run the cells yourself: your own app
  answers, live.
* **Exercises.** Each exercise cell holds `# YOUR CODE HERE` / `raise NotImplementedError()` where the
  solution has its code; the check cell after it shows a `NotImplementedError` until you finish the
  exercise. That cell is tagged `raises-exception`, so "Run All" carries on past it.
* **nbgrader metadata** on exercise cells follows nbgrader's convention (`### BEGIN SOLUTION` markers in
  the source notebooks), but the course generates these copies with its own small script; nbgrader is
  not needed to use or grade them.
"""


def generate() -> dict[Path, str]:
    """Learner notebook path -> its exact file text (and this folder's README)."""
    result = {NOTEBOOKS / "README.md": README}
    for src in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(src, as_version=4)
        result[NOTEBOOKS / src.name] = nbformat.writes(learner_copy(nb, src.name)) + "\n"
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="do not write; fail if notebooks/ differs")
    args = ap.parse_args()
    wanted = generate()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    extra = [p for p in NOTEBOOKS.glob("*.ipynb") if p not in wanted]  # README.md is in wanted
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)} (run `make notebooks`)")
        for p in extra:
            print(f"no solution for: {p.relative_to(ROOT)}")
        return 1 if stale or extra else 0
    NOTEBOOKS.mkdir(exist_ok=True)
    for p in stale:
        p.write_text(wanted[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in extra:
        print(f"warning: {p.relative_to(ROOT)} has no solution notebook", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
