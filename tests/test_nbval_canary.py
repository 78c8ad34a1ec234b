"""Proves that nbval really compares outputs under the course's flags (a green run is not vacuous)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_canary_sanitized_cell_passes_and_unmatchable_cell_fails():
    # No flags of its own: the canary runs under pyproject.toml's addopts, exactly as make test does.
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--noconftest",
        "-rA",
        str(ROOT / "tests" / "canary" / "canary.ipynb"),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    assert re.search(r"\b1 failed, 1 passed\b", out), out[-3000:]
    assert re.search(r"^PASSED tests/canary/canary\.ipynb::Cell 0$", out, re.M), out[
        -3000:
    ]  # timestamp, sanitized
    assert re.search(r"^FAILED tests/canary/canary\.ipynb::Cell 1\b", out, re.M), out[
        -3000:
    ]  # random, must differ


def test_make_test_does_not_collect_notebooks_that_fail_on_purpose():
    # make test collects notebooks, solutions and tests; the canary and the grader's broken submissions
    # must stay out of that run (a conftest's collect_ignore_glob can shadow another's).
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "notebooks", "solutions", "tests"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    assert "::Cell 0" in out, out[-3000:]  # notebooks are collected at all
    for part in ("tests/canary/", "grading_fixtures/"):
        assert part not in out, [line for line in out.splitlines() if part in line][:5]
