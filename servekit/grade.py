"""``python -m servekit.grade SUBMISSIONS --assignment {01,10}``: the grader's command.

The grader is the package :mod:`servekit.grader` (see its docstring for what a run does); this module
keeps the command and the names the course's tests and scripts use.
"""

from __future__ import annotations

import sys

from servekit.grader.checks import count_names as _count_names
from servekit.grader.cli import find_submissions, grade_folder, main
from servekit.grader.job import Limits
from servekit.grader.notebook import (
    cleanup_cells,
    cleanup_notes,
    code_source,
    fingerprint,
    integrity_findings,
)
from servekit.grader.probe import MAX_PROBE_CHARS, parse_probe, probe_code, probe_output, probe_text
from servekit.grader.report import INTEGRITY_PENALTY, CheckResult, Report, printable, write_gradebook
from servekit.grader.rubric import (
    CLEANUP_CHECK,
    GRADING_DIR,
    Live,
    assignment_id,
    available_assignments,
    load_checks,
    load_rubric,
)
from servekit.grader.run import grade_submission

__all__ = [
    "CLEANUP_CHECK",
    "GRADING_DIR",
    "INTEGRITY_PENALTY",
    "MAX_PROBE_CHARS",
    "CheckResult",
    "Limits",
    "Live",
    "Report",
    "_count_names",
    "assignment_id",
    "available_assignments",
    "cleanup_cells",
    "cleanup_notes",
    "code_source",
    "find_submissions",
    "fingerprint",
    "grade_folder",
    "grade_submission",
    "integrity_findings",
    "load_checks",
    "load_rubric",
    "main",
    "parse_probe",
    "printable",
    "probe_code",
    "probe_output",
    "probe_text",
    "write_gradebook",
]

if __name__ == "__main__":
    sys.exit(main())
