"""Structure of the course's notebooks: generated copies in sync, conventions every lesson keeps."""

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "scripts" / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(spec)
sys.modules["make_notebooks"] = make_notebooks
spec.loader.exec_module(make_notebooks)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_lessons_exist_in_order_and_mirror_each_other():
    names = [p.name for p in SOLUTIONS]
    assert names[:2] == ["00_setup.ipynb", "01_first_deployment.ipynb"]
    numbers = [int(n[:2]) for n in names]
    assert numbers == sorted(set(numbers)), "one notebook per number: the number is the order"
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == names
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in names if f"(notebooks/{n})" not in readme]
    assert not missing, f"README's course map lacks {missing}"


def test_learner_notebooks_are_generated_from_solutions():
    wanted = make_notebooks.generate()
    stale = [p.name for p, text in wanted.items() if p.read_text() != text]
    assert not stale, f"notebooks/ out of date for {stale}: run `make notebooks`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_is_a_fresh_clean_run(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    counts = [c.execution_count for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), "stored outputs must come from one top-to-bottom run"
    for cell in code_cells(nb):
        assert not any(o.output_type == "error" for o in cell.outputs), f"error stored in: {cell.source[:80]}"
    assert sum(bool(c.outputs) for c in code_cells(nb)) >= len(counts) // 2, "most cells should show a result"
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert not timed, (
        f"cells {timed} carry run timestamps (metadata.execution): re-run scripts/execute_notebooks.py"
    )


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_lesson_shape(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^#\s*\d\d ·", nb.cells[0].source), "title: '# NN · ...'"
    assert "What you will" in nb.cells[0].source and "minute" in nb.cells[0].source, "say what and how long"
    assert "## Check your work" in text and "## Summary" in text and "## Cleanup" in text
    checks = [c for c in code_cells(nb) if "All checks passed" in c.source]
    assert checks and checks[0].source.count("assert ") >= 5, "check-your-work cell asserts on the live app"
    last = code_cells(nb)[-1].source
    assert last.index("serve.shutdown()") < last.index("ray.shutdown()"), (
        "last cell: serve.shutdown(), then ray.shutdown()"
    )
    assert "Old idiom" in text or "old idiom" in text.lower(), "say where the web's old API differs"


@pytest.mark.parametrize("path", [p for p in SOLUTIONS if p.name >= "01"], ids=lambda p: p.name)
def test_lessons_have_exercises_with_checks(path):
    nb = nbformat.read(path, as_version=4)
    learner = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    exercises = [i for i, c in enumerate(nb.cells) if "### BEGIN SOLUTION" in c.source]
    assert exercises, "at least one exercise"
    for i in exercises:
        stub = learner.cells[i]
        assert "raise NotImplementedError()" in stub.source and "### BEGIN SOLUTION" not in stub.source
        check = next(c for c in learner.cells[i + 1 :] if c.cell_type == "code")
        assert "raises-exception" in check.metadata["tags"]
        assert [o.ename for o in check.outputs] == ["NotImplementedError"]


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _solution(src):
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "x", "schema_version": 3}
    return cell


def _check(src="f()"):
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["nbgrader"] = {
        "solution": False,
        "grade": True,
        "grade_id": "y",
        "schema_version": 3,
        "points": 1,
    }
    return cell


def test_generator_replaces_the_solution_and_expects_the_check_to_fail():
    nb = _nb(_solution("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\n"), _check())
    out = make_notebooks.learner_copy(nb, "t")
    assert out.cells[0].source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert out.cells[1].metadata["tags"] == ["raises-exception"]
    assert out.cells[1].outputs[0]["ename"] == "NotImplementedError"
    assert nb.cells[0].source.count("return 42") == 1, "the solution notebook is not modified"


@pytest.mark.parametrize(
    "cells, problem",
    [
        ((_solution("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), _check()), "inside a function"),
        ((_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n"), _check()), "unmatched"),
        (
            (_solution("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),),
            "must be its check",
        ),
        (
            (
                nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION"),
                _check(),
            ),
            "nbgrader",
        ),
    ],
)
def test_generator_rejects_broken_conventions(cells, problem):
    with pytest.raises(make_notebooks.ConventionError, match=problem):
        make_notebooks.learner_copy(_nb(*cells), "t")
