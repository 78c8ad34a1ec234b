"""Run an exercise's check against wrong answers (and the solution), in one live kernel.

A check that passes a plausible wrong answer is a bug. For a solution notebook, this runs every code
cell before the exercise (the lesson's live app comes up as in a learner's kernel), then, for each
answer in ``tests/wrong_answers/<notebook>.py`` (``EXERCISES = {exercise function: {answer:
source}}``; a source may be ``(old, new)``: the solution with that one change), runs that source in
place of the exercise cell and then the exercise's check cell; every wrong answer must make the
check raise, and the solution must pass. The cleanup cells run at the end. Not part of ``make test``
(a few minutes per lesson): ``make test-exercises`` runs it for every lesson that lists wrong answers.

Usage:  python scripts/try_wrong_answers.py solutions/08_ab_testing.ipynb [...]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from servekit.cleanup import become_subreaper, reap_leftovers  # noqa: E402

WRONG_DIR = ROOT / "tests" / "wrong_answers"


def module_of(notebook: Path):
    """tests/wrong_answers/<notebook>.py: EXERCISES, and RESET ({exercise: source run before each answer})."""
    path = WRONG_DIR / f"{notebook.stem}.py"
    spec = importlib.util.spec_from_file_location(f"wrong_{notebook.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wrong_answers(notebook: Path) -> dict[str, dict[str, str]]:
    """{exercise cell's first defined name: {answer name: source}} for a notebook."""
    return module_of(notebook).EXERCISES


def exercise_name(source: str) -> str:
    for line in source.splitlines():
        if line.startswith(("def ", "async def ")):
            return line.split("def ", 1)[1].split("(", 1)[0]
    raise ValueError(f"no function in the exercise cell:\n{source}")


def run(notebook: Path, timeout_s: int = 300) -> list[tuple[str, str, bool, str]]:
    """(exercise, answer, check failed?, first line of the error) for each answer, solution last."""
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    exercises = [i for i, c in enumerate(code) if "### BEGIN SOLUTION" in c.source]
    answers = wrong_answers(notebook)
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    results = []
    with client.setup_kernel():
        done = 0

        def execute(source: str) -> str | None:
            cell = nbformat.v4.new_code_cell(source)
            nb.cells.append(cell)  # nbclient stores the run cell at its index
            try:
                client.execute_cell(cell, len(nb.cells) - 1)
                return None
            except CellExecutionError as exc:
                return f"{exc.ename}: {exc.evalue}".splitlines()[0][:200]
            except CellTimeoutError:  # interrupted: a check that hangs is a bug too, say so
                return f"HANGS: the cell ran past {timeout_s} s"

        cleanup_at = next(
            (i for i, c in enumerate(code) if "cleanup" in c.metadata.get("tags", [])), len(code)
        )
        for i in exercises:
            name = exercise_name(code[i].source)
            for k in range(done, i):
                if error := execute(code[k].source):
                    if "raises-exception" not in code[k].metadata.get("tags", []):
                        raise RuntimeError(f"cell {k} of {notebook.name} failed: {error}")
            reset = getattr(module_of(notebook), "RESET", {}).get(name)
            for answer, source in answers.get(name, {}).items():
                if reset:  # what the previous answer left (a half-deployed app) must not decide this one
                    execute(reset)
                if isinstance(source, tuple):  # (old, new): the solution with one change
                    assert source[0] in code[i].source, f"{answer}: {source[0]!r} is not in the solution"
                    source = code[i].source.replace(*source)
                execute(source)
                error = execute(code[i + 1].source)
                failed = error is not None and not error.startswith("HANGS")
                results.append((name, answer, failed, error or "PASSED"))
                verdict = "fails, as it must" if failed else "PASSES or HANGS (a bug)"
                print(f"  {name} / {answer}: {verdict}: {error}", flush=True)
            if reset:
                execute(reset)
            execute(code[i].source)
            error = execute(code[i + 1].source)
            results.append((name, "the solution", error is None, error or "passed"))
            print(f"  {name} / the solution: {'passes' if error is None else 'FAILS'}: {error}", flush=True)
            done = i + 2
        for k in range(max(done, cleanup_at), len(code)):
            execute(code[k].source)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(
        ROOT / "solutions" / f"{p.stem}.ipynb" for p in WRONG_DIR.glob("[0-9]*.py")
    )
    bad = 0
    become_subreaper()  # what a lesson starts in its own process group (09's nodes) is stopped too
    for notebook in notebooks:
        t0 = time.monotonic()
        print(f"{notebook}:", flush=True)
        results = run(notebook.resolve())
        if left := reap_leftovers(grace_s=10):
            print(f"  {notebook.name} left processes after its kernel stopped: {left} (stopped by PID)")
        bad += sum(not ok for *_, ok, _ in results)
        print(f"  ({time.monotonic() - t0:.0f} s)")
    print(
        "every wrong answer failed its check, every solution passed" if not bad else f"{bad} wrong outcome(s)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
