"""Grade submitted notebooks: run each in a fresh kernel, check its live app, tear everything down.

``python -m servekit.grade SUBMISSIONS --assignment 10 [--out DIR] [--timeout-s N]``

SUBMISSIONS is one notebook or a folder with one per student (``alice.ipynb`` or
``alice/10_capstone.ipynb``). For each submission the grader

1. scans its code for references to the hidden checks or to the grader (``checks_NN``,
   ``servekit.grade``, a string naming ``grading/`` other than the public rubric's path); such a
   submission is not run: it is flagged and scores 0;
2. copies it into a fresh work folder under ``scratch/grading/`` (with its own ``scratch/``, so no
   earlier run's files count) and executes it with nbclient in a fresh kernel, in a worker
   process, with a per-cell timeout and a whole-notebook limit, up to its cleanup cells (the first cell tagged
   ``cleanup``, else the cells after a ``## Cleanup`` heading, else the last code cell when it
   shuts Serve or Ray down); execution stops at the first error, as "Run All" does, except in
   cells tagged ``raises-exception``; cells marked ``# NBVAL_SKIP`` (optional measurements that
   the course's own tests skip too) are skipped;
3. runs the hidden checks (``grading/checks_NN.py``) from this process against the live app:
   the HTTP checks here, where the submission cannot patch them; what they need from inside the
   kernel (the ``CAPSTONE`` dict, ``serve.status()``, the Serve port) comes from one injected
   cell that prints JSON, which is treated as untrusted input;
4. runs the submission's cleanup cells, then looks for anything the submission started that
   is still running, or an MLflow registry it kept under its ``scratch/`` (the
   ``cleanup_leaves_nothing`` check), and finally stops every such
   process by PID (the worker's process group, the kernel's, all their descendants, and the
   Ray cluster found in the submission's session folder), then checks that nothing is left;
5. writes ``report.json`` and ``report.md`` per submission (and ``gradebook.csv`` for a folder).

Points come from ``grading/rubric_NN.json``; each check is all or nothing. Integrity: a
submission whose code names the hidden checks or the grader, or that changes their files while
it runs, is flagged and its score is set to 0 (a penalty, for every assignment); the report
still lists what the checks found when it ran, for the instructor's review.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import importlib.util
import io
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from servekit import cluster as _cluster
from servekit.cleanup import become_subreaper, describe, find_clusters, kill_processes, remove_stale
from servekit.paths import REPO_ROOT, SCRATCH

GRADING_DIR = REPO_ROOT / "grading"
CLEANUP_CHECK = "cleanup_leaves_nothing"
INTEGRITY_PENALTY = "score set to 0 and flagged for the instructor's review"
_MAX_PROBE_CHARS = 1_000_000


# ----------------------------------------------------------------------------- results and reports


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def to_markdown(self) -> str:
        lines = [
            f"# {self.title}: {self.student}",
            "",
            f"**Score: {self.score} / {self.total}**" + ("  (FLAGGED)" if self.flagged else ""),
            "",
            f"Notebook `{self.notebook}`, assignment {self.assignment}, graded in {self.seconds:.0f} s.",
            "",
        ]
        if self.flagged:
            lines += ["## Integrity", "", f"Penalty: {INTEGRITY_PENALTY}.", ""]
            lines += [f"- {item}" for item in self.integrity] + [""]
        ex = self.execution
        lines += ["## Running the notebook", ""]
        if ex.get("ran"):
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
            for err in ex.get("cleanup_errors", []):
                lines.append(f"- Cleanup cell {err['cell']} failed: `{err['ename']}: {err['evalue']}`")
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


# ----------------------------------------------------------------------------- rubric and checks


def assignment_id(value: str) -> str:
    """``"1"``, ``"01"`` -> ``"01"``; ``"10"`` -> ``"10"``."""
    if not value.isdigit():
        raise ValueError(f"an assignment is a lesson number like 01 or 10, not {value!r}")
    return f"{int(value):02d}"


def available_assignments(grading_dir: Path = GRADING_DIR) -> list[str]:
    return sorted(
        p.stem.split("_")[1]
        for p in grading_dir.glob("checks_[0-9][0-9].py")
        if (grading_dir / f"rubric_{p.stem.split('_')[1]}.json").exists()
    )


def load_rubric(assignment: str, grading_dir: Path = GRADING_DIR) -> dict:
    rubric = json.loads((grading_dir / f"rubric_{assignment}.json").read_text())
    ids = [c["id"] for c in rubric["checks"]]
    if len(set(ids)) != len(ids) or sum(c["points"] for c in rubric["checks"]) != rubric["total"]:
        raise ValueError(
            f"rubric_{assignment}.json: check ids must be unique and points must add up to total"
        )
    return rubric


def load_checks(assignment: str, grading_dir: Path = GRADING_DIR) -> ModuleType:
    """The hidden checks, loaded from their file (grading/ is not a package learners import)."""
    path = grading_dir / f"checks_{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"_servekit_hidden_checks_{assignment}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Live:
    """What the hidden checks get at the check point. ``kernel`` is the injected cell's JSON:
    untrusted (the submission's code ran in that kernel), so checks validate what they read."""

    kernel: dict[str, Any]
    workdir: Path
    source: str  # the submission's code cells, joined
    leftovers: list[str] = field(default_factory=list)  # processes still running after the cleanup

    @property
    def scratch(self) -> Path:
        return self.workdir / "scratch"

    @property
    def port(self) -> int | None:
        """Serve's HTTP port: from Serve's controller, else from servekit.start_serve; None when the
        kernel knows none (then no request goes out: port 8000 may be someone else's Serve)."""
        for port in (self.kernel.get("serve_port"), self.kernel.get("port")):
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                return port
        return None

    def url(self, route: str) -> str:
        if self.port is None:
            raise ConnectionError("Serve is not running in the notebook's kernel (no HTTP port)")
        route = route if isinstance(route, str) else "/"
        return f"http://127.0.0.1:{self.port}/{route.lstrip('/')}"

    def post(self, route: str, body: Any = None, raw: str | bytes | None = None, **kwargs):
        """POST ``body`` as JSON (or ``raw`` bytes as application/json) to the app, from this process."""
        import requests

        kwargs.setdefault("timeout", 30)
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
            headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
            return requests.post(self.url(route), data=data, headers=headers, **kwargs)
        return requests.post(self.url(route), json=body, **kwargs)

    def app_status(self, name: str) -> dict | None:
        apps = self.kernel.get("serve_apps")
        app = apps.get(name) if isinstance(apps, dict) else None
        return app if isinstance(app, dict) else None


#: Injected at the check point, in the submission's kernel. It defines only names starting with
#: ``__grader`` and prints one line: the nonce, then JSON. Each checks module adds ``PROBE``: the body
#: of ``async def __grader_extra(out)`` that fills ``out`` with what its checks need.
_PROBE_TEMPLATE = """
async def __grader_probe():
    import json as __grader_json, sys as __grader_sys
    out = {{}}
    try:
        import servekit.cluster as __grader_cluster
        out["port"] = __grader_cluster._state.get("port")
    except Exception as exc:
        out["port_error"] = repr(exc)
    try:
        import ray
        out["ray_initialized"] = ray.is_initialized()
        if ray.is_initialized():
            from ray import serve
            apps = {{}}
            for name, app in serve.status().applications.items():
                apps[name] = {{
                    "status": str(getattr(app.status, "value", app.status)),
                    "route_prefix": getattr(app, "route_prefix", None),
                    "deployments": {{
                        d: {{"status": str(getattr(s.status, "value", s.status)),
                            "replica_states": {{str(k): v for k, v in s.replica_states.items()}}}}
                        for d, s in app.deployments.items()
                    }},
                }}
            out["serve_apps"] = apps
            try:  # the proxy's port as Serve's controller has it (a notebook may skip servekit.start_serve)
                from ray.serve.context import _get_global_client
                client = _get_global_client(raise_if_no_controller_running=False)
                out["serve_port"] = client.http_config.port if client else None
            except Exception as exc:
                out["serve_port_error"] = repr(exc)
    except Exception as exc:
        out["serve_error"] = repr(exc)
    if "mlflow" in __grader_sys.modules:
        try:
            out["mlflow_tracking_uri"] = __grader_sys.modules["mlflow"].get_tracking_uri()
            out["mlflow_registry_uri"] = __grader_sys.modules["mlflow"].get_registry_uri()
        except Exception as exc:
            out["mlflow_error"] = repr(exc)
    try:
        await __grader_extra(out)
    except Exception as exc:
        out["extra_error"] = repr(exc)
    return __grader_json.dumps(out, default=repr)

async def __grader_extra(out):
{extra}

print({nonce!r} + await __grader_probe())
"""


def probe_code(checks: ModuleType, nonce: str) -> str:
    extra = getattr(checks, "PROBE", "pass").strip("\n") or "pass"
    extra = "\n".join(("    " + line) if line.strip() else "" for line in extra.splitlines())
    return _PROBE_TEMPLATE.format(extra=extra, nonce=nonce)


# ----------------------------------------------------------------------------- reading the notebook


def code_source(nb: dict) -> str:
    return "\n\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    )


def cleanup_cells(nb: dict) -> list[int]:
    """Indices of the cleanup cells: from the first code cell tagged ``cleanup`` to the end; else the
    code cells after a ``## Cleanup`` heading; else the last code cell if it shuts Serve or Ray down."""
    cells = nb["cells"]
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    tagged = [i for i in code if "cleanup" in cells[i].get("metadata", {}).get("tags", [])]
    if tagged:
        return [i for i in code if i >= tagged[0]]
    for i, c in enumerate(cells):
        text = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "markdown" and re.match(r"#+\s*clean[\s-]?up\b", text.strip(), re.I):
            return [j for j in code if j > i]
    if code:
        last = cells[code[-1]]["source"]
        last = "".join(last) if isinstance(last, list) else last
        if "serve.shutdown(" in last or "ray.shutdown(" in last or "servekit.shutdown(" in last:
            return [code[-1]]
    return []


_SUSPICIOUS = [
    (re.compile(r"\bchecks_\d+", re.I), "names a hidden checks file"),
    (re.compile(r"\bgrading\s*\.\s*checks|grading[/\\]+checks", re.I), "names the hidden checks"),
    (re.compile(r"servekit\W{1,3}grade\b|\bgrade\.py\b"), "names the grader (servekit.grade)"),
    (re.compile(r"from\s+servekit\s+import\s[^\n]*\bgrade\b"), "imports the grader"),
    (re.compile(r"__grader"), "touches the grader's injected cell"),
]
#: A string that names the grading/ folder, unless it is the public rubric's path.
_GRADING_PATH = re.compile(r"\bgrading\b(?![/\\]rubric_\d+\.json)", re.I)


def _code_and_strings(source: str) -> tuple[str, list[str]]:
    """The cell's code without comments (a comment that says 'checks_10' refers to nothing), and its
    string literals. Cells that do not tokenize (magics) lose their comments line by line."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        return code, [m[1] for m in re.findall(r"""(['"])(.*?)\1""", code)]
    # An f-string's {expressions} are code, not text: `f"{grading['total']}"` names a variable.
    strings = [re.sub(r"\{[^{}]*\}", "", t.string) for t in tokens if t.type == tokenize.STRING]
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT), strings


def integrity_findings(nb: dict) -> list[str]:
    """Reasons to flag a submission before running it: its code refers to the hidden checks or the
    grader, or a string in it names the grading/ folder (the rubric, which is public, excepted)."""
    findings = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code, strings = _code_and_strings(src)
        for pattern, why in _SUSPICIOUS:
            if m := pattern.search(code):
                findings.append(f"cell {i} {why}: `{m.group(0)}`")
        for text in strings:
            if _GRADING_PATH.search(text):
                findings.append(f"cell {i} names the grading/ folder (hidden checks): `{text[:80]}`")
                break
    return findings


def fingerprint(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of the grader's own files and the hidden checks, to notice a run that changed them."""
    out = {}
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# ----------------------------------------------------------------------------- processes


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _new_descendants(before: set[int], exclude: set[int]) -> list[psutil.Process]:
    """This process's living descendants that were not there before the submission ran. The grader
    is a child subreaper, so anything a kernel started stays its descendant, orphaned or not."""
    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return [p for p in procs if p.pid not in before and p.pid not in exclude and _alive(p)]


def _fallback_dirs() -> set[Path]:
    """The kit's ``/tmp/servekit-ray-*`` session folders (used when scratch/ray is too long a path)."""
    return set(_cluster.FALLBACK_PARENT.glob(f"{_cluster.FALLBACK_PREFIX}*"))


def _submission_processes(before: set[int], exclude: set[int], ray_dirs: list[Path]) -> list[psutil.Process]:
    """What the submission started and still runs: new descendants of this process, and the Ray
    processes with files open in its session folders (``ray_dirs``), whoever their parent is."""
    procs = {p.pid: p for p in _new_descendants(before, exclude)}
    ray_dirs = [d for d in ray_dirs if d.is_dir()]
    if ray_dirs:
        for cluster in find_clusters(ray_dirs):
            for pid, p in cluster.processes.items():
                if pid not in exclude and _alive(p):
                    procs.setdefault(pid, p)
            if cluster.live_driver and cluster.live_driver not in exclude:
                with contextlib.suppress(psutil.Error):
                    procs.setdefault(cluster.live_driver, psutil.Process(cluster.live_driver))
    return list(procs.values())


def _kill_group(pid: int | None) -> None:
    if not pid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        pgid = os.getpgid(pid)
        if pgid != os.getpgid(0):
            os.killpg(pgid, signal.SIGKILL)


# ----------------------------------------------------------------------------- the worker process


class _Channel:
    """JSON lines from the worker's private pipe, read in a thread so waits can have deadlines."""

    def __init__(self, stream):
        self.messages: queue.Queue = queue.Queue()
        self.progress: dict = {}  # the last "cell" message: which cell runs, how many ran before it
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("phase") == "cell":
                    self.progress = msg
                else:
                    self.messages.put(msg)
        self.messages.put({"phase": "eof"})

    def wait(self, phase: str, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                return None
            if msg.get("phase") == phase:
                return msg
            if msg.get("phase") == "eof":
                return None
        return None


def _worker_main() -> int:
    """``python -m servekit.grade --worker``: run one notebook for the grader (job as JSON on stdin).

    Messages go out on the original stdout; everything else printed lands on stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    job = json.loads(sys.stdin.readline())

    def send(phase: str, **data) -> None:
        out.write(json.dumps({"phase": phase, **data}) + "\n")

    def wait_for_go() -> None:
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(0)  # the grader went away

    asyncio.run(_run_notebook(job, send, wait_for_go))
    return 0


async def _run_notebook(job: dict, send, wait_for_go) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(job["notebook"], as_version=4)
    stop, cleanup = job["stop"], job["cleanup"]
    deadline: list[float] = [time.monotonic() + 10**9]  # set once the kernel is up

    def timeout_for(cell) -> int:
        if cell.metadata.get("grader") == "cleanup":
            return job["cleanup_timeout_s"]
        if cell.metadata.get("grader") == "probe":
            return job["probe_timeout_s"]
        return max(1, int(min(job["cell_timeout_s"], deadline[0] - time.monotonic())))

    client = NotebookClient(
        nb,
        timeout_func=timeout_for,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "Timeout", "evalue": "the cell ran past its time limit", "traceback": []},
        kernel_name="python3",
        startup_timeout=job["startup_timeout_s"],
        record_timing=False,
        resources={"metadata": {"path": job["workdir"]}},
    )
    state: dict[str, Any] = {"ran": True, "cells_run": 0, "error": None}
    async with client.async_setup_kernel():
        kernel_pid = getattr(client.km.provisioner, "pid", None)
        send("started", kernel_pid=kernel_pid)
        deadline[0] = time.monotonic() + job["timeout_s"]
        for i in range(stop):
            cell = nb.cells[i]
            if cell.cell_type != "code":
                continue
            if cell.source.lstrip().startswith("# NBVAL_SKIP"):  # an optional, long measurement
                state.setdefault("skipped", []).append(i)
                continue
            send("cell", index=i, done=state["cells_run"])
            try:
                await client.async_execute_cell(cell, i)
                state["cells_run"] += 1
                for out in cell.outputs:  # an error in a cell tagged raises-exception: the notebook went on
                    if out.get("output_type") == "error":
                        evalue = str(out.get("evalue", ""))[:300]
                        state.setdefault("allowed_errors", []).append(
                            {"cell": i, "ename": out.get("ename", ""), "evalue": evalue}
                        )
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
                ename = getattr(exc, "ename", type(exc).__name__)
                evalue = getattr(exc, "evalue", str(exc).splitlines()[0] if str(exc) else "")
                if ename == "Timeout" and time.monotonic() >= deadline[0] - 2:
                    state["timed_out"] = True
                    evalue = f"the notebook ran past its {job['timeout_s']} s limit in this cell"
                elif ename == "Timeout":
                    evalue = f"the cell ran past its {job['cell_timeout_s']} s limit"
                state["error"] = {"cell": i, "ename": ename, "evalue": str(evalue)[:500]}
                break
        probe = nbformat.v4.new_code_cell(job["probe"], metadata={"grader": "probe"})
        nb.cells.append(probe)
        probe_result: str | None = None
        try:
            await client.async_execute_cell(probe, len(nb.cells) - 1)
        except Exception as exc:  # noqa: BLE001 - reported, the checks then fail with this reason
            state["probe_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        # A long line may arrive in several stream messages: join them before splitting lines.
        printed = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
        for line in printed.splitlines():
            if line.startswith(job["nonce"]):
                probe_result = line[len(job["nonce"]) :][:_MAX_PROBE_CHARS]
        nb.cells.pop()
        send("live", state=state, probe=probe_result)
        wait_for_go()
        state["cleanup_errors"] = []
        for i in cleanup:
            nb.cells[i].metadata["grader"] = "cleanup"
            try:
                await client.async_execute_cell(nb.cells[i], i)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
                ename = getattr(exc, "ename", type(exc).__name__)
                state["cleanup_errors"].append(
                    {"cell": i, "ename": ename, "evalue": str(getattr(exc, "evalue", ""))}
                )
            finally:
                del nb.cells[i].metadata["grader"]
        send("cleaned", state=state)
        wait_for_go()
    nbformat.write(nb, Path(job["workdir"]) / "executed.ipynb")
    send("done")


# ----------------------------------------------------------------------------- grading one submission


@dataclass
class Limits:
    timeout_s: int = 900  # the whole notebook, up to its cleanup cells
    cell_timeout_s: int = 300
    cleanup_timeout_s: int = 120  # each cleanup cell
    startup_timeout_s: int = 120  # the kernel's start
    probe_timeout_s: int = 60
    grace_s: float = 10.0  # for processes to exit after the submission's cleanup
    kill_margin_s: float = 30.0  # past a limit, before the grader kills a kernel that ignores interrupts


def grade_submission(
    notebook: Path,
    assignment: str,
    out_dir: Path,
    limits: Limits | None = None,
    student: str | None = None,
    grading_dir: Path = GRADING_DIR,
) -> Report:
    """Grade one notebook; writes ``report.json``, ``report.md`` (and ``executed.ipynb`` when it ran)
    under ``out_dir`` and returns the report."""
    import nbformat

    limits = limits or Limits()
    assignment = assignment_id(assignment)
    rubric = load_rubric(assignment, grading_dir)
    checks = load_checks(assignment, grading_dir)
    notebook = Path(notebook).resolve()
    report = Report(
        student=student or notebook.stem,
        notebook=str(notebook),
        assignment=assignment,
        title=rubric.get("title", f"Assignment {assignment}"),
        total=rubric["total"],
    )
    started = time.monotonic()
    results: dict[str, tuple[bool, str, float]] = {}
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - a broken file is a submission's problem, reported
        nb = None
        report.execution = {"ran": False, "why": f"not a readable notebook: {type(exc).__name__}: {exc}"}
    if nb is not None:
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
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(report.to_json())
    (out_dir / "report.md").write_text(report.to_markdown())
    return report


def _run_and_check(
    nb, notebook: Path, checks, rubric, limits: Limits, report: Report, grading_dir: Path, out_dir: Path
):
    import nbformat

    become_subreaper()
    results: dict[str, tuple[bool, str, float]] = {}
    # Inside the repository's git-ignored scratch/, so that paths a notebook takes relative to the
    # repository still work; the notebook's own scratch/ (SERVEKIT_SCRATCH) is fresh.
    (SCRATCH / "grading").mkdir(parents=True, exist_ok=True)
    workdir = Path(
        tempfile.mkdtemp(
            prefix=f"{re.sub(r'[^A-Za-z0-9_-]', '_', report.student)[:40]}-", dir=SCRATCH / "grading"
        )
    )
    scratch = workdir / "scratch"
    scratch.mkdir()
    models = SCRATCH / "models"  # built models are reused (lesson 01's model takes a while to build)
    if models.is_dir():
        (scratch / "models").symlink_to(models)
    if notebook.parent.name == report.student and len(list(notebook.parent.glob("*.ipynb"))) == 1:
        for extra in notebook.parent.iterdir():  # a student's folder: their other files come along
            if extra.is_file() and extra.suffix != ".ipynb":
                shutil.copy2(extra, workdir / extra.name)
    target = workdir / "submission.ipynb"
    nbformat.write(nb, target)
    nonce = secrets.token_hex(16)
    stop_cells = cleanup_cells(nb)
    job = {
        "notebook": str(target),
        "workdir": str(workdir),
        "stop": stop_cells[0] if stop_cells else len(nb.cells),
        "cleanup": stop_cells,
        "probe": probe_code(checks, nonce),
        "nonce": nonce,
        "timeout_s": limits.timeout_s,
        "cell_timeout_s": limits.cell_timeout_s,
        "cleanup_timeout_s": limits.cleanup_timeout_s,
        "startup_timeout_s": limits.startup_timeout_s,
        "probe_timeout_s": limits.probe_timeout_s,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["SERVEKIT_SCRATCH"] = str(scratch)
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("RAY_ADDRESS", None)
    protected = [grading_dir, Path(__file__).resolve()]
    hashes = fingerprint(protected)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    fallbacks_before = _fallback_dirs()

    def ray_dirs() -> list[Path]:
        return [scratch / "ray", *sorted(_fallback_dirs() - fallbacks_before)]

    log = (workdir / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "servekit.grade", "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=workdir,
        start_new_session=True,
    )
    kernel_pid: int | None = None
    live: Live | None = None
    finished = False
    exclude = {worker.pid}
    try:
        assert worker.stdin and worker.stdout
        worker.stdin.write(json.dumps(job) + "\n")
        worker.stdin.flush()
        channel = _Channel(worker.stdout)
        msg = channel.wait("started", limits.startup_timeout_s + 30)
        if msg is None:
            report.execution = {
                "ran": False,
                "why": "the kernel did not start: " + _tail(workdir / "worker.log"),
            }
            return results
        kernel_pid = msg.get("kernel_pid")
        if kernel_pid:
            exclude.add(kernel_pid)
        live_msg = channel.wait("live", limits.timeout_s + limits.probe_timeout_s + limits.kill_margin_s)
        if live_msg is None:
            why = f"killed at the whole-notebook limit ({limits.timeout_s} s) without reaching the checks"
            if worker.poll() is not None:  # the runner itself died (the kernel could not be talked to)
                why = "the notebook runner stopped before the checks: " + _tail(workdir / "worker.log", 300)
            report.execution = {"ran": True, "killed": why, "cells_run": channel.progress.get("done", 0)}
            if "index" in channel.progress:
                report.execution["error"] = {
                    "cell": channel.progress["index"],
                    "ename": "Timeout",
                    "evalue": "still running at the limit; it did not stop when interrupted",
                }
            results = {c["id"]: (False, why, 0.0) for c in rubric["checks"]}
            return results
        report.execution = dict(live_msg["state"])
        live = Live(_parse_probe(live_msg.get("probe"), live_msg["state"]), workdir, code_source(nb))
        results.update(_run_checks(checks, live, report.execution, rubric))
        worker.stdin.write("go\n")
        worker.stdin.flush()
        cleaned = channel.wait(
            "cleaned", limits.cleanup_timeout_s * max(1, len(stop_cells)) + limits.kill_margin_s
        )
        t0 = time.monotonic()
        if cleaned is None:
            report.execution["killed"] = (
                "the cleanup cells did not finish in time; the grader stopped the kernel"
            )
            results[CLEANUP_CHECK] = (False, "the cleanup cells did not finish in time", 0.0)
        else:
            report.execution = dict(cleaned["state"])
            results[CLEANUP_CHECK] = _cleanup_check(stop_cells, before, exclude, ray_dirs(), limits, t0, live)
            with contextlib.suppress(OSError):
                worker.stdin.write("go\n")
                worker.stdin.flush()
            finished = channel.wait("done", 30) is not None
        return results
    finally:
        stopped = _teardown(worker, kernel_pid, before, ray_dirs(), report, finished)
        found = live.leftovers if live is not None else []
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


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _parse_probe(text: str | None, state: dict) -> dict:
    if not text:
        return {"probe_missing": state.get("probe_error", "the injected cell printed nothing")}
    try:
        data = json.loads(text)
    except ValueError:
        return {"probe_missing": "the injected cell's output was not JSON"}
    return (
        data if isinstance(data, dict) else {"probe_missing": "the injected cell's output was not an object"}
    )


def _run_checks(checks: ModuleType, live: Live, execution: dict, rubric: dict) -> dict:
    results = {}
    for item in rubric["checks"]:
        if item["id"] == CLEANUP_CHECK:
            continue
        fn = getattr(checks, f"check_{item['id']}", None)
        t0 = time.monotonic()
        if fn is None:
            results[item["id"]] = (
                False,
                f"grader error: no check_{item['id']} in checks_{rubric['assignment']}",
                0.0,
            )
            continue
        try:
            passed, reason = fn(live)
        except Exception as exc:  # noqa: BLE001 - a check that breaks on odd data fails with the reason
            passed, reason = False, f"check failed on what it found: {type(exc).__name__}: {exc}"
        results[item["id"]] = (bool(passed), str(reason), time.monotonic() - t0)
    return results


def _cleanup_check(stop_cells, before, exclude, ray_dirs: list[Path], limits: Limits, t0: float, live: Live):
    if not stop_cells:
        return (False, "the notebook has no cleanup cells (tag them `cleanup`)", 0.0)
    deadline = time.monotonic() + limits.grace_s
    left = _submission_processes(before, exclude, ray_dirs)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _submission_processes(before, exclude, ray_dirs)
    if left:
        live.leftovers = describe(left)
        names = _count_names(live.leftovers)
        return (
            False,
            f"{len(left)} process(es) still running {limits.grace_s:.0f} s after the cleanup cells "
            f"(the grader stopped them): {names}",
            time.monotonic() - t0,
        )
    registry = _registry_file(live)
    if registry is not None and registry.exists():
        return (
            False,
            f"its MLflow registry {registry.relative_to(live.workdir)} is still in scratch/ after cleanup",
            time.monotonic() - t0,
        )
    return (
        True,
        "nothing the notebook started is left running after its cleanup cells",
        time.monotonic() - t0,
    )


def _count_names(described: list[str]) -> str:
    """``["12 raylet", "13 ray::IDLE", "14 ray::IDLE"]`` -> ``"ray::IDLE x2, raylet"``."""
    counts: dict[str, int] = {}
    for line in described:
        name = line.split(" ", 1)[-1]
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(counts.items()))


def _registry_file(live: Live) -> Path | None:
    """The submission's MLflow SQLite file when it lies in its scratch/ folder (the capstone rubric:
    "no MLflow scratch folder is left"); None otherwise."""
    uri = live.kernel.get("mlflow_tracking_uri")
    if not isinstance(uri, str) or not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    path = (path if uri.startswith("sqlite:////") else live.workdir / path).resolve()
    return path if path.is_relative_to(live.scratch.resolve()) else None


def _reap(before: set[int]) -> None:
    """Collect the exit status of zombies the submission left as this process's children (orphans
    adopted by the subreaper), by PID, so that none stays in the process table."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            if child.pid not in before and child.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(child.pid, os.WNOHANG)


def _teardown(
    worker: subprocess.Popen,
    kernel_pid: int | None,
    before: set[int],
    ray_dirs: list[Path],
    report: Report,
    finished: bool,
) -> list[str]:
    """Stop the worker, the kernel and everything they started, by PID; returns what had to be stopped
    here (beyond the worker and the kernel themselves)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=10 if finished else 0.1)  # a worker that sent "done" is exiting
    exclude = {worker.pid} | ({kernel_pid} if kernel_pid else set())
    leftovers = _submission_processes(before, exclude, ray_dirs)
    names = describe(leftovers)
    _kill_group(worker.pid)
    _kill_group(kernel_pid)
    targets = _submission_processes(before, set(), ray_dirs)
    kill_processes(targets, timeout_s=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=5)
    remaining = _submission_processes(before, set(), ray_dirs)
    _reap(before)
    remove_stale([d for d in ray_dirs if d.name.startswith(_cluster.FALLBACK_PREFIX)])
    if remaining:
        report.teardown_clean = False
        report.execution["not_stopped"] = describe(remaining)
    return names


# ----------------------------------------------------------------------------- folders and the command


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
    assignment = assignment_id(assignment)
    reports = []
    subs = find_submissions(path, assignment)
    if not subs:
        raise FileNotFoundError(f"no notebooks in {path}")
    for n, (student, nb) in enumerate(subs, 1):
        print(f"[{n}/{len(subs)}] grading {student} ({nb.name}) ...", flush=True)
        report = grade_submission(nb, assignment, out / student, limits, student, grading_dir)
        print(
            f"{student}: {report.score}/{report.total}{'  FLAGGED' if report.flagged else ''}"
            f"  ({report.seconds:.0f} s)  -> {out / student / 'report.md'}",
            flush=True,
        )
        reports.append(report)
    if Path(path).is_dir():
        write_gradebook(reports, out / "gradebook.csv")
    return reports


def write_gradebook(reports: list[Report], path: Path) -> None:
    ids = [c.id for c in reports[0].checks] if reports else []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "score", "total", "flagged", *ids, "seconds", "notebook"])
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
                ]
            )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker_main()
    ap = argparse.ArgumentParser(prog="python -m servekit.grade", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
