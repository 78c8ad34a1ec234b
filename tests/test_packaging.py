"""`pip install .` (not editable) ships the whole kit: servekit with its grader, and course_apps.

The editable install the course uses hides a missing package (its finder maps the checkout), so this
test builds a real wheel from a copy of the sources, installs it into a bare folder and imports from
there, in a fresh process whose only PYTHONPATH is that folder and whose working directory is outside
the repository. An installed kit has no grading/ (the hidden checks stay in the checkout): its
grader's --help still works, and grading itself needs a checkout (see pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from servekit.paths import REPO_ROOT


def run(cmd: list[str], cwd: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run(cmd, cwd=cwd, env=base | env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def test_wheel_ships_the_grader_and_course_apps_and_imports_from_where_it_is_installed(tmp_path):
    src = tmp_path / "src"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("servekit", "course_apps"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), "."], src)
    (wheel,) = (tmp_path / "dist").glob("servekit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("servekit", "servekit/grader", "course_apps"):
        expected = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / package).glob("*.py")}
        assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not any(n.startswith(("grading/", "tests/", "data/")) for n in names), sorted(names)

    site = tmp_path / "site"
    run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)], tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    modules = ("servekit", "course_apps", "servekit.grader")
    code = f"import importlib\nfor m in {modules}: print(importlib.import_module(m).__file__)"
    where = run([sys.executable, "-c", code], outside, PYTHONPATH=str(site)).split()
    assert len(where) == 3 and all(Path(p).is_relative_to(site) for p in where), f"not the wheel's: {where}"
    usage = run([sys.executable, "-m", "servekit.grade", "--help"], outside, PYTHONPATH=str(site))
    assert "usage: python -m servekit.grade" in usage and "--assignment" in usage
