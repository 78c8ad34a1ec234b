""" "Restart and run all" works twice in a row (DESIGN.md): a notebook's second run finds the first
run's files under scratch/ and must not trip on them.

Checked from the code cells, without running anything: every folder a notebook builds from
``servekit.SCRATCH`` (and every folder built from one of those) is created only with
``exist_ok=True``, or after the notebook removed it or a folder above it (``shutil.rmtree``), as
lessons 07 and 08 and the capstones remove theirs before they make a fresh registry. What runs them
twice for real is ``make test-rerun NB=solutions/NN_name.ipynb``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from servekit.paths import REPO_ROOT

NOTEBOOKS = sorted(
    [*REPO_ROOT.glob("solutions/[0-9][0-9]_*.ipynb"), *REPO_ROOT.glob("solutions/capstone/*.ipynb")]
    + [*REPO_ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")]
)
FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _mentions_scratch(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Attribute) and n.attr == "SCRATCH")
        or (isinstance(n, ast.Name) and n.id == "SCRATCH")
        for n in ast.walk(node)
    )


def _created(call: ast.Call) -> ast.expr | None:
    """The folder a call creates without ``exist_ok=True`` (``X.mkdir()``, ``os.makedirs(X)``), or None."""
    if any(
        k.arg == "exist_ok" and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords
    ):
        return None
    name = ast.unparse(call.func)
    if name.endswith(".mkdir") and isinstance(call.func, ast.Attribute):
        return call.func.value
    if name in ("os.makedirs", "os.mkdir") and call.args:
        return call.args[0]
    return None


def rerun_problems(cells: list[str]) -> tuple[dict[str, set[str]], list[str]]:
    """The names the cells build from ``SCRATCH`` (each with the names it is built from), and every
    creation of a folder under scratch/ that a second run would trip on."""
    parents: dict[str, set[str]] = {}
    removed: set[str] = set()
    problems = []
    for index, source in enumerate(cells):
        tree = compile(source, f"cell {index}", "exec", flags=FLAGS)
        nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.Call)]
        for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):  # in the order they are written
            if isinstance(node, ast.Assign):
                target = node.targets[0]
                from_scratch = _names(node.value) & parents.keys()
                if isinstance(target, ast.Name) and (from_scratch or _mentions_scratch(node.value)):
                    parents[target.id] = from_scratch
                    removed.discard(target.id)  # a new path under an old name
                continue
            if ast.unparse(node.func) == "shutil.rmtree" and node.args and isinstance(node.args[0], ast.Name):
                removed.add(node.args[0].id)
            folder = _created(node)
            if folder is None:
                continue
            if isinstance(folder, ast.Name):
                unsafe = folder.id in parents and not _ancestors(folder.id, parents) & removed
            else:
                unsafe = _mentions_scratch(folder)  # made in place: nothing can have removed it first
            if unsafe:
                problems.append(
                    f"cell {index}: {ast.unparse(node)} (neither exist_ok=True nor removed first)"
                )
    return parents, problems


def _ancestors(name: str, parents: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(parents.get(current, ()))
    return seen


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_a_second_run_does_not_trip_on_the_first_runs_scratch_folders(path):
    cells = _code_cells(path)
    folders, problems = rerun_problems(cells)
    assert not problems, (
        f"{path.name}: a second run would fail on a folder the first one left:\n" + "\n".join(problems)
    )
    if any("SCRATCH" in source for source in cells):
        assert folders, f"{path.name} mentions SCRATCH but no scratch folder was found: the parser missed it"


def test_the_rule_catches_what_a_second_run_trips_on():
    scratch = 'import shutil\nimport servekit\nwork = servekit.SCRATCH / "lesson"\n'
    assert rerun_problems([scratch, "work.mkdir(parents=True)"])[1], "made without exist_ok, never removed"
    assert rerun_problems([scratch, '(servekit.SCRATCH / "x").mkdir()'])[1], "made in place, not named"
    kept = [scratch + "work.mkdir(exist_ok=True)", 'sub = work / "db"\nsub.mkdir()']
    assert rerun_problems(kept)[1], "a folder under a kept one is still there on the second run"
    assert rerun_problems([scratch + "os.makedirs(work)"])[1]
    assert rerun_problems([scratch, "work.mkdir()", "shutil.rmtree(work)"])[1], "removed only at the end"

    fresh = [
        scratch + "shutil.rmtree(work, ignore_errors=True)\nwork.mkdir(parents=True)",
        'sub = work / "db"\nsub.mkdir()',
    ]
    assert rerun_problems(fresh) == ({"work": set(), "sub": {"work"}}, [])
    assert rerun_problems([scratch + "work.mkdir(parents=True, exist_ok=True)"])[1] == []
    assert rerun_problems(['other = Path("/tmp/x")\nother.mkdir()'])[1] == [], "not under scratch/"


def test_order_is_the_order_written_not_the_nesting():
    cells = [
        'import servekit\nwork = servekit.SCRATCH / "x"\nif True:\n    work.mkdir()\nshutil.rmtree(work)'
    ]
    assert rerun_problems(cells)[1], "the rmtree comes after the nested mkdir"
