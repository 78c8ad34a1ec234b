"""What a grading run finds, as ``report.json``, ``report.md`` and a folder's ``gradebook.csv``."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INTEGRITY_PENALTY = "score set to 0 and flagged for the instructor's review"


def printable(name: str) -> str:
    """A file or folder name as printable text: bytes that are not UTF-8 (which Python keeps as
    surrogate escapes) as ``\\xff``, control characters as escapes (``\\n``)."""
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate that did not come from the file system
        raw = name.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def valid_name(name: str) -> bool:
    """Whether a name from the file system is valid UTF-8 text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class CheckResult:
    id: str
    points: int
    max_points: int
    passed: bool
    reason: str
    seconds: float = 0.0


@dataclass
class Report:
    student: str
    notebook: str
    assignment: str
    title: str
    score: int = 0
    total: int = 0
    flagged: bool = False
    integrity: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    execution: dict[str, Any] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    teardown_clean: bool = True
    seconds: float = 0.0
    not_gradeable: str = ""  # why the submission could not be graded at all (its score is 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_markdown(self) -> str:
        lines = [
            f"# {self.title}: {self.student}",
            "",
            f"**Score: {self.score} / {self.total}**" + ("  (FLAGGED)" if self.flagged else ""),
            "",
            *([f"**Not gradeable:** {self.not_gradeable}", ""] if self.not_gradeable else []),
            f"Notebook `{self.notebook}`, assignment {self.assignment}, graded in {self.seconds:.0f} s.",
            "",
        ]
        if self.flagged:
            lines += ["## Integrity", "", f"Penalty: {INTEGRITY_PENALTY}.", ""]
            lines += [f"- {item}" for item in self.integrity] + [""]
        ex = self.execution
        lines += ["## Running the notebook", ""]
        if ex.get("ran"):
            if ex.get("before_checks"):
                lines.append(
                    f"- Before the checks, code cells {_cell_ranges(ex['before_checks'])} ran, in order."
                )
            else:
                lines.append(f"- {ex.get('cells_run', 0)} code cells ran before the checks.")
            if ex.get("error"):
                err = ex["error"]
                lines.append(
                    f"- Cell {err['cell']} stopped the notebook: `{err['ename']}: {err['evalue']}`"
                    " (the cells after it, up to the cleanup cells, did not run)."
                )
            if ex.get("skipped"):
                cells = ", ".join(str(i) for i in ex["skipped"])
                lines.append(f"- Cells {cells} were skipped: marked `# NBVAL_SKIP` (optional measurements).")
            for err in ex.get("allowed_errors", []):
                lines.append(
                    f"- Cell {err['cell']} raised `{err['ename']}: {err['evalue']}`"
                    " (tagged `raises-exception`, so the notebook went on)."
                )
            if ex.get("after_checks"):
                lines.append(f"- After the checks, the cleanup cells {_cell_ranges(ex['after_checks'])} ran.")
            lines += [f"- {note}" for note in ex.get("cleanup_notes", [])]
            for err in ex.get("cleanup_errors", []):
                lines.append(f"- Cleanup cell {err['cell']} failed: `{err['ename']}: {err['evalue']}`")
            ready = ex.get("app_ready") or {}
            if ready.get("ready"):
                lines.append(f"- The app answered over HTTP {ready['waited_s']:.1f} s after the check point.")
            elif ready.get("waited_s"):
                lines.append(
                    f"- The app did not answer over HTTP within {ready['waited_s']:.0f} s of the check point"
                    f" ({ready.get('why', '')}); the checks ran anyway."
                )
            elif ready:
                lines.append(f"- At the check point {ready.get('why', 'no app was reported')}.")
            if ex.get("killed"):
                lines.append(f"- {ex['killed']}")
        else:
            lines.append(f"- Not run: {ex.get('why', 'unknown')}")
        lines += ["", "## Checks", "", "| check | points | result | reason | time |", "|---|---|---|---|---|"]
        for c in self.checks:
            reason = c.reason.replace("|", "\\|").replace("\n", " ")
            mark = "pass" if c.passed else "FAIL"
            lines.append(
                f"| `{c.id}` | {c.points} / {c.max_points} | {mark} | {reason} | {c.seconds:.1f} s |"
            )
        if self.leftovers:
            lines += ["", "## Processes left running (stopped by the grader)", ""]
            lines += [f"- {p}" for p in self.leftovers]
        if not self.teardown_clean:
            lines += ["", "**Warning:** the grader could not stop every process; see report.json."]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> None:
        """``report.json`` and ``report.md`` in ``out_dir`` (text the submission put in the report, such
        as an exception's message, may hold lone surrogates: they are written escaped)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(self.to_json())
        (out_dir / "report.md").write_text(self.to_markdown(), encoding="utf-8", errors="backslashreplace")


def _cell_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def write_gradebook(reports: list[Report], path: Path) -> None:
    ids = [c.id for c in reports[0].checks] if reports else []
    with path.open("w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "total", "flagged", *ids, "seconds", "notebook", "not_gradeable"])
        for r in reports:
            points = {c.id: c.points for c in r.checks}
            w.writerow(
                [
                    r.student,
                    r.score,
                    r.total,
                    r.flagged,
                    *(points.get(i, 0) for i in ids),
                    r.seconds,
                    r.notebook,
                    r.not_gradeable,
                ]
            )
