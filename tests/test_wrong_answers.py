"""Every exercise has plausible wrong answers, and they still fit the solution they change.

``make test-exercises`` runs them against the live checks (minutes per lesson, not part of
``make test``); this static test keeps tests/wrong_answers/ from drifting away from the solutions:
a solution edited so that an ``(old, new)`` answer no longer applies, or a new exercise with no
wrong answers, fails here at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from try_wrong_answers import exercise_name, module_of  # noqa: E402

WITH_EXERCISES = [
    path
    for path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if "### BEGIN SOLUTION" in path.read_text()
]


def exercise_cells(notebook: Path) -> dict[str, str]:
    nb = nbformat.read(notebook, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    return {exercise_name(source): source for source in cells}


def test_the_lessons_with_exercises_are_found():
    assert len(WITH_EXERCISES) >= 10, [p.name for p in WITH_EXERCISES]


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_exercise_has_wrong_answers_that_apply_to_its_solution(notebook):
    assert (ROOT / "tests" / "wrong_answers" / f"{notebook.stem}.py").is_file(), "no wrong answers listed"
    module = module_of(notebook)
    cells = exercise_cells(notebook)
    assert set(module.EXERCISES) == set(cells), "one entry per exercise, named by its first function"
    assert set(getattr(module, "RESET", {})) <= set(cells)
    for name, answers in module.EXERCISES.items():
        assert len(answers) >= 2, f"{name}: at least two plausible wrong answers"
        for answer, source in answers.items():
            if isinstance(source, tuple):
                old, new = source
                assert old != new and cells[name].count(old) == 1, f"{name} / {answer}: {old!r} not once"
            else:
                assert f"def {name}(" in source and source != cells[name], f"{name} / {answer}"
