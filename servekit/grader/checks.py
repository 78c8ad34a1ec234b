"""Running the hidden checks against the live app, and the grader's own cleanup check."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from servekit.cleanup import describe, still_running
from servekit.grader.rubric import CLEANUP_CHECK, Live

#: A check's outcome: (passed, reason, seconds).
Result = tuple[bool, str, float]


def run_checks(checks: ModuleType, live: Live, rubric: dict[str, Any]) -> dict[str, Result]:
    """Each rubric check but the grader's own, as ``check_<id>(live)`` of the hidden checks module;
    a check that raises fails with the exception as its reason."""
    results: dict[str, Result] = {}
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


def cleanup_check(
    stop_cells: list[int], find: Callable[[], list[psutil.Process]], grace_s: float, t0: float, live: Live
) -> Result:
    """``cleanup_leaves_nothing``: ``grace_s`` after the cleanup cells, none of the processes ``find()``
    returns (what the submission started) runs, and no MLflow registry is left in its scratch/."""
    if not stop_cells:
        return (False, "the notebook has no cleanup cells (tag them `cleanup`)", 0.0)
    left = still_running(find, grace_s)
    if left:
        live.leftovers = describe(left)
        names = count_names(live.leftovers)
        return (
            False,
            f"{len(left)} process(es) still running {grace_s:.0f} s after the cleanup cells "
            f"(the grader stopped them): {names}",
            time.monotonic() - t0,
        )
    registry = registry_file(live)
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


def count_names(described: list[str]) -> str:
    """``["12 raylet", "13 ray::IDLE", "14 ray::IDLE"]`` -> ``"ray::IDLE x2, raylet"``."""
    counts: dict[str, int] = {}
    for line in described:
        name = line.split(" ", 1)[-1]
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(counts.items()))


def registry_file(live: Live) -> Path | None:
    """The submission's MLflow SQLite file when it lies in its scratch/ folder (the capstone rubric:
    "no MLflow scratch folder is left"); None otherwise."""
    uri = live.kernel.get("mlflow_tracking_uri")
    if not isinstance(uri, str) or not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    path = (path if uri.startswith("sqlite:////") else live.workdir / path).resolve()
    return path if path.is_relative_to(live.scratch.resolve()) else None
