"""House style, checked: ruff (format and lint, line length 110) over the kit, the deployable apps
(course_apps), the hidden checks (grading), scripts, tests and the solution notebooks, and lesson
cells small enough to read (Made-With-ML's notebook: median 4 lines)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from servekit.paths import REPO_ROOT

TARGETS = ["servekit", "course_apps", "grading", "scripts", "tests", "conftest.py", "solutions"]
MAX_CELL_LINES = 42  # "about 40 lines" (issue 12): a line or two of slack, no more
SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    return [str(exe)] if exe.exists() else [shutil.which("ruff") or "ruff"]


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_ruff(args):
    out = subprocess.run([*ruff(), *args, *TARGETS], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_code_cells_are_small(path):
    nb = nbformat.read(path, as_version=4)
    long = {i: c.source.count("\n") + 1 for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    long = {i: n for i, n in long.items() if n > MAX_CELL_LINES}
    assert not long, f"cells over {MAX_CELL_LINES} lines (cell index: lines): {long}; split them"
