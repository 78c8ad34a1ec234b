"""The capstone's contract with the grader, in code: where the load-test report goes, what it holds,
and an embedded MLflow registry in a scratch folder (as lesson 07 sets one up).

A capstone notebook sets ``CAPSTONE = {"app", "route", "example", "bad_example", "batching",
"mlflow_model"}``, deploys its app under that name and route, and writes its load test with
:func:`write_loadtest` to ``scratch/capstone/<app>/loadtest.json``. The rubric (checks and points)
is ``grading/rubric_10.json``; :func:`rubric` reads it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from servekit.paths import REPO_ROOT, SCRATCH

CAPSTONE_KEYS = ("app", "route", "example", "bad_example", "batching", "mlflow_model")
LOADTEST_KEYS = ("requests", "errors", "error_rate", "throughput_rps", "p50_ms", "p95_ms", "p99_ms")
RUBRIC = REPO_ROOT / "grading" / "rubric_10.json"


def check_capstone(capstone: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming what is wrong with a ``CAPSTONE`` dict's shape."""
    missing = [k for k in CAPSTONE_KEYS if k not in capstone]
    if missing:
        raise ValueError(f"CAPSTONE lacks {missing}")
    if (
        not isinstance(capstone["app"], str)
        or not capstone["app"].replace("-", "").replace("_", "").isalnum()
    ):
        raise ValueError("CAPSTONE['app'] must be a name of letters, digits, '-' and '_'")
    if not isinstance(capstone["route"], str) or not capstone["route"].startswith("/"):
        raise ValueError("CAPSTONE['route'] must be a route prefix starting with '/'")
    if not isinstance(capstone["batching"], bool):
        raise ValueError("CAPSTONE['batching'] must be True or False")
    if capstone["mlflow_model"] is not None and not isinstance(capstone["mlflow_model"], str):
        raise ValueError("CAPSTONE['mlflow_model'] must be a registered model name or None")
    json.dumps([capstone["example"], capstone["bad_example"]])  # both must be JSON bodies


def loadtest_path(app: str) -> Path:
    """``scratch/capstone/<app>/loadtest.json``: where the grader looks for the load-test report."""
    return SCRATCH / "capstone" / app / "loadtest.json"


def loadtest_summary(report) -> dict[str, Any]:
    """The contract's keys from a :class:`servekit.LoadReport` (``requests`` counts errors too)."""
    requests = report.total
    return {
        "requests": requests,
        "errors": report.errors,
        "error_rate": round(report.errors / requests, 4) if requests else 1.0,
        "throughput_rps": round(report.throughput, 1),
        "p50_ms": round(report.p50_ms, 1),
        "p95_ms": round(report.p95_ms, 1),
        "p99_ms": round(report.p99_ms, 1),
    }


def write_loadtest(app: str, report, **extra: Any) -> Path:
    """Write the load-test report of app ``app`` (plus any ``extra`` keys) where the grader reads it."""
    summary = {**loadtest_summary(report), **extra}
    bad = [k for k in LOADTEST_KEYS if not isinstance(summary[k], int | float) or math.isnan(summary[k])]
    if bad:
        raise ValueError(f"the load test measured nothing usable for {bad}: did any request complete?")
    path = loadtest_path(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def rubric() -> dict[str, Any]:
    """The capstone's rubric: ``{"total": 100, "checks": [{"id", "points", "what"}, ...]}``."""
    return json.loads(RUBRIC.read_text())


def embedded_registry(folder: Path, experiment: str) -> str:
    """A fresh MLflow tracking store and registry in ``folder`` (SQLite + artifact folder, absolute
    URIs, as lesson 07); sets it as the current one and returns its tracking URI.

    Also makes MLflow's output deterministic: no telemetry, progress bars, printed run URLs or INFO
    lines. Replicas need the URI in their environment (``runtime_env={"env_vars": ...}``).
    """
    import mlflow

    os.environ.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
    )
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return uri
