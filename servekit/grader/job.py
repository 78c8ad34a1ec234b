"""What the worker gets: a fresh work folder with its own scratch/, the job, the environment."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from servekit.grader.probe import probe_code
from servekit.grader.report import printable
from servekit.paths import REPO_ROOT, SCRATCH


@dataclass
class Limits:
    """Time limits for one submission, in seconds."""

    timeout_s: int = 900  # the whole notebook, up to its cleanup cells
    cell_timeout_s: int = 300
    cleanup_timeout_s: int = 120  # each cleanup cell
    startup_timeout_s: int = 120  # the kernel's start
    probe_timeout_s: int = 60
    ready_timeout_s: int = 60  # after the probe, for the apps to answer over HTTP before the checks
    grace_s: float = 10.0  # for processes to exit after the submission's cleanup
    kill_margin_s: float = 30.0  # past a limit, before the grader kills a kernel that ignores interrupts


def make_workdir(notebook: Path, student: str) -> Path:
    """A fresh folder for one run, with its own scratch/ (built models linked in); ``student`` is the
    report's (printable) name, which names the student's folder when they handed one in."""
    # Inside the repository's git-ignored scratch/, so that paths a notebook takes relative to the
    # repository still work; the notebook's own scratch/ (SERVEKIT_SCRATCH) is fresh.
    (SCRATCH / "grading").mkdir(parents=True, exist_ok=True)
    workdir = Path(
        tempfile.mkdtemp(prefix=f"{re.sub(r'[^A-Za-z0-9_-]', '_', student)[:40]}-", dir=SCRATCH / "grading")
    )
    scratch = workdir / "scratch"
    scratch.mkdir()
    models = SCRATCH / "models"  # built models are reused (lesson 01's model takes a while to build)
    if models.is_dir():
        (scratch / "models").symlink_to(models)
    if printable(notebook.parent.name) == student and len(list(notebook.parent.glob("*.ipynb"))) == 1:
        for extra in notebook.parent.iterdir():  # a student's folder: their other files come along
            if extra.is_file() and extra.suffix != ".ipynb":
                shutil.copy2(extra, workdir / extra.name)
    return workdir


def make_job(
    nb: Any, workdir: Path, stop_cells: list[int], checks: ModuleType, limits: Limits
) -> dict[str, Any]:
    """What the worker gets: the notebook (written into ``workdir``), where to stop, the probe, the limits."""
    import nbformat

    target = workdir / "submission.ipynb"
    nbformat.write(nb, target)
    nonce = secrets.token_hex(16)
    return {
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


def worker_env(scratch: Path) -> dict[str, str]:
    """The worker's environment: the kit importable, the run's own scratch/, no outside Ray cluster."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["SERVEKIT_SCRATCH"] = str(scratch)
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("RAY_ADDRESS", None)
    return env
