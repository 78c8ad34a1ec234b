"""Grading one submission: flag it or run it in a worker, check the live app, tear everything down."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from servekit.cleanup import become_subreaper
from servekit.grader.checks import Result, cleanup_check, run_checks
from servekit.grader.job import Limits, make_job, make_workdir, worker_env
from servekit.grader.notebook import (
    cleanup_cells,
    cleanup_notes,
    code_cells,
    code_source,
    fingerprint,
    integrity_findings,
    notebook_problem,
)
from servekit.grader.probe import parse_probe
from servekit.grader.processes import fallback_dirs, submission_processes, teardown
from servekit.grader.ready import wait_until_serving
from servekit.grader.report import CheckResult, Report, printable, valid_name
from servekit.grader.rubric import CLEANUP_CHECK, GRADING_DIR, Live, assignment_id, load_checks, load_rubric
from servekit.grader.worker import Channel

#: The grader's own files (this package and the ``servekit.grade`` command), fingerprinted with the
#: hidden checks while a submission runs.
GRADER_FILES = [Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "grade.py"]


def grade_submission(
    notebook: Path,
    assignment: str,
    out_dir: Path,
    limits: Limits | None = None,
    student: str | None = None,
    grading_dir: Path = GRADING_DIR,
) -> Report:
    """Grade one notebook; writes ``report.json``, ``report.md`` (and ``executed.ipynb`` when it ran)
    under ``out_dir`` and returns the report. ``student`` (default the notebook's name) is the name
    from the file system; the report has it as printable text."""
    limits = limits or Limits()
    notebook = Path(notebook).resolve()
    name = notebook.stem if student is None else student
    report, rubric = _new_report(notebook, assignment, name, grading_dir)
    checks = load_checks(report.assignment, grading_dir)
    started = time.monotonic()
    results: dict[str, Result] = {}
    nb, why = _read_submission(notebook, name)
    if why:
        _mark_not_gradeable(report, why)
    else:
        report.integrity = integrity_findings(nb)
        if report.integrity:
            report.flagged = True
            report.execution = {
                "ran": False,
                "why": "flagged before running: its code refers to the hidden "
                "checks or the grader; it was not run",
            }
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            results = _run_and_check(nb, notebook, checks, rubric, limits, report, grading_dir, out_dir)
    return _finish(report, rubric, results, out_dir, started)


def not_gradeable(
    notebook: Path, assignment: str, out_dir: Path, why: str, student: str, grading_dir: Path = GRADING_DIR
) -> Report:
    """The report (written under ``out_dir``) of a submission that could not be graded: score 0, ``why``."""
    report, rubric = _new_report(Path(notebook).resolve(), assignment, student, grading_dir)
    _mark_not_gradeable(report, why)
    return _finish(report, rubric, {}, out_dir, time.monotonic())


def _new_report(notebook: Path, assignment: str, name: str, grading_dir: Path) -> tuple[Report, dict]:
    assignment = assignment_id(assignment)
    rubric = load_rubric(assignment, grading_dir)
    report = Report(
        student=printable(name),
        notebook=printable(str(notebook)),
        assignment=assignment,
        title=rubric.get("title", f"Assignment {assignment}"),
        total=rubric["total"],
    )
    return report, rubric


def _read_submission(notebook: Path, name: str) -> tuple[Any, str | None]:
    """The notebook, or why it cannot be graded: a name that is not text, a file nbformat cannot read,
    or one it reads but the notebook format rejects (a code cell without source, say)."""
    import nbformat

    if not valid_name(name):
        return None, (
            f"its name, {printable(name)}, is not valid UTF-8 text: rename the file or folder"
            " and grade it again"
        )
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - a broken file is a submission's problem, reported
        return None, f"not a readable notebook: {type(exc).__name__}: {str(exc)[:300]}"
    if problem := notebook_problem(nb):
        return None, f"the file breaks the notebook format: {problem}"
    return nb, None


def _mark_not_gradeable(report: Report, why: str) -> None:
    report.not_gradeable = why
    report.execution = {"ran": False, "why": f"not gradeable: {why}"}


def _finish(
    report: Report, rubric: dict[str, Any], results: dict[str, Result], out_dir: Path, started: float
) -> Report:
    """Score ``report`` from the checks' ``results`` (a check without one fails with the reason the
    notebook did not run), write it under ``out_dir``, return it."""
    for item in rubric["checks"]:
        passed, reason, seconds = results.get(
            item["id"], (False, report.execution.get("why", "not checked"), 0.0)
        )
        report.checks.append(
            CheckResult(
                item["id"], item["points"] if passed else 0, item["points"], passed, reason, round(seconds, 2)
            )
        )
    report.score = 0 if report.flagged else sum(c.points for c in report.checks)
    report.seconds = round(time.monotonic() - started, 1)
    report.write(out_dir)
    return report


@dataclass
class _Run:
    """One submission's worker, what it is graded by, and what the grader learns as it goes."""

    worker: subprocess.Popen[str]
    workdir: Path
    before: set[int]  # this process's descendants before the worker started
    fallbacks_before: set[Path]
    nb: Any
    checks: ModuleType
    rubric: dict[str, Any]
    limits: Limits
    report: Report
    kernel_pid: int | None = None
    live: Live | None = None
    finished: bool = False

    def ray_dirs(self) -> list[Path]:
        """The submission's Ray session folders: its scratch/ray and the fallbacks that appeared."""
        scratch = self.workdir / "scratch"
        return [scratch / "ray", *sorted(fallback_dirs(scratch) - self.fallbacks_before)]

    def send(self, line: str) -> None:
        """One line to the worker: the job, then ``go`` past the check point and the cleanup."""
        assert self.worker.stdin
        self.worker.stdin.write(line + "\n")
        self.worker.stdin.flush()


def _run_and_check(
    nb: Any,
    notebook: Path,
    checks: ModuleType,
    rubric: dict[str, Any],
    limits: Limits,
    report: Report,
    grading_dir: Path,
    out_dir: Path,
) -> dict[str, Result]:
    """Run ``nb`` in a worker, check it, tear down everything it started; the checks' results."""
    become_subreaper()
    workdir = make_workdir(notebook, report.student)
    stop_cells = cleanup_cells(nb)
    job = make_job(nb, workdir, stop_cells, checks, limits)
    protected = [grading_dir, *GRADER_FILES]
    hashes = fingerprint(protected)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    fallbacks_before = fallback_dirs(workdir / "scratch")
    log = (workdir / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "servekit.grader.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=worker_env(workdir / "scratch"),
        cwd=workdir,
        start_new_session=True,
    )
    run = _Run(worker, workdir, before, fallbacks_before, nb, checks, rubric, limits, report)
    try:
        results = _drive(run, job, stop_cells)
        report.execution["cleanup_cells"] = stop_cells
        report.execution["cleanup_notes"] = cleanup_notes(nb, stop_cells)
        return results
    finally:
        stopped = teardown(worker, run.kernel_pid, before, run.ray_dirs(), report, run.finished)
        found = run.live.leftovers if run.live is not None else []
        report.leftovers = found + [p for p in stopped if p not in found]
        log.close()
        executed = workdir / "executed.ipynb"
        if executed.exists():  # the student's notebook as it ran (the grader's injected cell is not in it)
            shutil.copy2(executed, out_dir / "executed.ipynb")
            report.execution["executed_notebook"] = str(out_dir / "executed.ipynb")
        changed = sorted(k for k, v in fingerprint(protected).items() if hashes.get(k) != v)
        changed += sorted(set(hashes) - set(fingerprint(protected)))
        if changed:
            report.flagged = True
            report.integrity.append(
                "the grader's files or the hidden checks changed while it ran: " + ", ".join(changed)
            )
        shutil.rmtree(workdir, ignore_errors=True)


def _drive(run: _Run, job: dict[str, Any], stop_cells: list[int]) -> dict[str, Result]:
    """The grader's side of the worker's protocol: started, live (the checks run), cleaned, done."""
    results: dict[str, Result] = {}
    worker, log_path, limits, report = run.worker, run.workdir / "worker.log", run.limits, run.report
    assert worker.stdout
    run.send(json.dumps(job))
    channel = Channel(worker.stdout)
    msg = channel.wait("started", limits.startup_timeout_s + 30)
    if msg is None:
        report.execution = {"ran": False, "why": "the kernel did not start: " + _tail(log_path)}
        return results
    run.kernel_pid = msg.get("kernel_pid")
    exclude = {worker.pid} | ({run.kernel_pid} if run.kernel_pid else set())
    live_msg = channel.wait("live", limits.timeout_s + limits.probe_timeout_s + limits.kill_margin_s)
    if live_msg is None:
        why = f"killed at the whole-notebook limit ({limits.timeout_s} s) without reaching the checks"
        if worker.poll() is not None:  # the runner itself died (the kernel could not be talked to)
            why = "the notebook runner stopped before the checks: " + _tail(log_path, 300)
        report.execution = {"ran": True, "killed": why, "cells_run": channel.progress.get("done", 0)}
        if "index" in channel.progress:
            report.execution["error"] = {
                "cell": channel.progress["index"],
                "ename": "Timeout",
                "evalue": "still running at the limit; it did not stop when interrupted",
            }
        return {c["id"]: (False, why, 0.0) for c in run.rubric["checks"]}
    report.execution = dict(live_msg["state"])
    live = run.live = Live(
        parse_probe(live_msg.get("probe"), live_msg["state"]),
        run.workdir,
        code_source(run.nb),
        code_cells=code_cells(run.nb),
    )
    ready = report.execution["app_ready"] = wait_until_serving(live, limits.ready_timeout_s)
    results.update(run_checks(run.checks, live, run.rubric))
    run.send("go")
    cleaned = channel.wait(
        "cleaned", limits.cleanup_timeout_s * max(1, len(stop_cells)) + limits.kill_margin_s
    )
    t0 = time.monotonic()
    if cleaned is None:
        report.execution["killed"] = "the cleanup cells did not finish in time; the grader stopped the kernel"
        results[CLEANUP_CHECK] = (False, "the cleanup cells did not finish in time", 0.0)
        return results
    report.execution = dict(cleaned["state"]) | {"app_ready": ready}
    ray_dirs = run.ray_dirs()
    results[CLEANUP_CHECK] = cleanup_check(
        stop_cells, lambda: submission_processes(run.before, exclude, ray_dirs), limits.grace_s, t0, live
    )
    with contextlib.suppress(OSError):
        run.send("go")
    run.finished = channel.wait("done", 30) is not None
    return results


def _tail(path: Path, chars: int = 800) -> str:
    """The end of the worker's log, for a report that says why the notebook did not run."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
