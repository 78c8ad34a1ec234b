"""``python -m servekit.grade``: grade one notebook or a folder of them, one report per student."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from servekit.grader.job import Limits
from servekit.grader.report import Report, printable, write_gradebook
from servekit.grader.rubric import GRADING_DIR, assignment_id, available_assignments
from servekit.grader.run import grade_submission, not_gradeable
from servekit.paths import SCRATCH

DESCRIPTION = (
    "Grade submitted notebooks: run each in a fresh kernel, check its live app, tear everything down."
)


def find_submissions(path: Path, assignment: str) -> list[tuple[str, Path]]:
    """(student, notebook) pairs: ``path`` itself, or ``*.ipynb`` and ``*/*.ipynb`` in a folder (in a
    student's folder with several notebooks, the one whose name starts with the assignment number)."""
    path = Path(path)
    if path.is_file():
        return [(path.stem, path)]
    found = [(p.stem, p) for p in sorted(path.glob("*.ipynb"))]
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        notebooks = sorted(folder.glob("*.ipynb"))
        if len(notebooks) > 1:
            notebooks = [p for p in notebooks if p.name.startswith(assignment)] or notebooks[:1]
        if notebooks:
            found.append((folder.name, notebooks[0]))
    return found


def grade_folder(
    path: Path, assignment: str, out: Path, limits: Limits | None = None, grading_dir: Path = GRADING_DIR
) -> list[Report]:
    """Grade every submission in ``path`` (see :func:`find_submissions`) into ``out/<student>/`` (the
    student's name as printable text); for a folder also ``out/gradebook.csv``. A submission that
    cannot be graded gets a report that says why, and the others are graded."""
    assignment = assignment_id(assignment)
    reports = []
    subs = find_submissions(path, assignment)
    if not subs:
        raise FileNotFoundError(f"no notebooks in {path}")
    folders: set[str] = set()
    for n, (student, nb) in enumerate(subs, 1):
        folder = printable(student)
        while folder in folders:  # alice.ipynb and alice/: one report each
            folder += "~"
        folders.add(folder)
        print(f"[{n}/{len(subs)}] grading {folder} ({printable(nb.name)}) ...", flush=True)
        try:
            report = grade_submission(nb, assignment, out / folder, limits, student, grading_dir)
        except Exception as exc:  # noqa: BLE001 - a grader bug with one submission must not stop the rest
            traceback.print_exc()
            why = f"the grader failed on it, a bug in the grader: {type(exc).__name__}: {str(exc)[:300]}"
            report = not_gradeable(nb, assignment, out / folder, why, student, grading_dir)
        print(
            f"{report.student}: {report.score}/{report.total}{'  FLAGGED' if report.flagged else ''}"
            f"{'  NOT GRADEABLE' if report.not_gradeable else ''}"
            f"  ({report.seconds:.0f} s)  -> {printable(str(out / folder / 'report.md'))}",
            flush=True,
        )
        reports.append(report)
    if Path(path).is_dir():
        write_gradebook(reports, out / "gradebook.csv")
    return reports


def main(argv: list[str] | None = None) -> int:
    """The command: parse ``argv`` (default the process's), grade, print one line per submission."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m servekit.grade", description=DESCRIPTION)
    ap.add_argument("submissions", type=Path, help="a notebook, or a folder of them (one per student)")
    ap.add_argument("--assignment", required=True, help=f"which one: {', '.join(available_assignments())}")
    ap.add_argument(
        "--out", type=Path, default=None, help="where reports go (default scratch/grades/<assignment>)"
    )
    ap.add_argument(
        "--timeout-s", type=int, default=Limits.timeout_s, help="whole-notebook limit per submission"
    )
    ap.add_argument("--cell-timeout-s", type=int, default=Limits.cell_timeout_s, help="limit per cell")
    args = ap.parse_args(argv)
    if not args.submissions.exists():
        ap.error(f"{args.submissions} does not exist")
    assignment = assignment_id(args.assignment)
    if assignment not in available_assignments():
        ap.error(f"no hidden checks for assignment {assignment} (have: {', '.join(available_assignments())})")
    out = args.out or SCRATCH / "grades" / assignment
    limits = Limits(timeout_s=args.timeout_s, cell_timeout_s=min(args.cell_timeout_s, args.timeout_s))
    grade_folder(args.submissions, assignment, out, limits)
    return 0
