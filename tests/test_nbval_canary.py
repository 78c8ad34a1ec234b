"""Proves that nbval really compares outputs under the course's flags (a green run is not vacuous)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# What the root conftest installs for make test (the canary runs without conftests, see below).
NOISE_FILTER = ("-p", "servekit.nbval_noise")


def run_canary(notebook: str, *plugins: str) -> str:
    """pytest's output for tests/canary/<notebook>, under pyproject.toml's addopts as make test runs it."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--noconftest",
        *plugins,
        "-rA",
        str(ROOT / "tests" / "canary" / notebook),
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout


def test_canary_sanitized_cell_passes_and_unmatchable_cell_fails():
    out = run_canary("canary.ipynb", *NOISE_FILTER)
    assert re.search(r"\b1 failed, 1 passed\b", out), out[-3000:]
    assert re.search(r"^PASSED tests/canary/canary\.ipynb::Cell 0$", out, re.M), out[
        -3000:
    ]  # timestamp, sanitized
    assert re.search(r"^FAILED tests/canary/canary\.ipynb::Cell 1\b", out, re.M), out[
        -3000:
    ]  # random, must differ


def test_a_stream_the_sanitizer_empties_counts_as_no_output():
    # Stored with no output: a run that prints only start_serve's busy-port note (other work on the
    # machine holds 8000) must pass, and one that prints anything the sanitizer keeps must still fail.
    out = run_canary("noise.ipynb", *NOISE_FILTER)
    assert re.search(r"\b1 failed, 1 passed\b", out), out[-3000:]
    assert re.search(r"^PASSED tests/canary/noise\.ipynb::Cell 0$", out, re.M), out[-3000:]
    assert re.search(r"^FAILED tests/canary/noise\.ipynb::Cell 1\b", out, re.M), out[-3000:]
    # Without it, nbval's field check fails the note-only cell too: the filter is what makes it pass.
    assert re.search(r"\b2 failed\b", run_canary("noise.ipynb")), (
        "nbval alone passed a cell with an unexpected stdout"
    )


def test_make_test_does_not_collect_notebooks_that_fail_on_purpose():
    # make test collects notebooks, solutions and tests; the canary and the grader's broken submissions
    # must stay out of that run (a conftest's collect_ignore_glob can shadow another's).
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "notebooks", "solutions", "tests"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    assert "::Cell 0" in out, out[-3000:]  # notebooks are collected at all
    for part in ("tests/canary/", "grading_fixtures/"):
        assert part not in out, [line for line in out.splitlines() if part in line][:5]


def test_a_notebook_past_binders_memory_fails_with_its_name_and_peak():
    # servekit/nbval_memcap.py puts each kernel in a 2 GiB memory cgroup without swap, as Binder does:
    # a cell that needs 2.5 GiB gets its kernel killed, and the notebook fails saying why.
    out = run_canary("memory.ipynb", "-p", "servekit.nbval_memcap")
    if "notebooks ran without a memory cap" in out:
        pytest.skip(re.search(r"notebooks ran without a memory cap: .*", out)[0])
    assert "memory.ipynb: the out-of-memory killer ended 1 process(es) inside its 2 GiB memory cap" in out, (
        out[-3000:]
    )
    peak_line = r"^\s*2\.\d\d GiB  tests/canary/memory\.ipynb  cap 2 GiB, 1 OOM kill"
    assert re.search(peak_line, out, re.M), out[-3000:]
    # the same plugin on a notebook that fits: passes, and its peak is in the table
    fits = run_canary("noise.ipynb", "-p", "servekit.nbval_memcap", *NOISE_FILTER)
    assert re.search(r"^\s*0\.\d\d GiB  tests/canary/noise\.ipynb  cap 2 GiB$", fits, re.M), fits[-3000:]
