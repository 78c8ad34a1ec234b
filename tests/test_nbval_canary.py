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
