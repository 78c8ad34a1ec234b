"""`make lab` really starts JupyterLab here (also as root) with the repository as its root, on lesson 00."""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import time

import psutil
import requests

from servekit import free_port
from servekit.cleanup import kill_processes
from servekit.paths import REPO_ROOT


def lab_command() -> list[str]:
    """The jupyter command line `make lab` runs (make -n prints it without running anything)."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "lab"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    lines = [line for line in out.stdout.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, out.stdout + out.stderr
    return shlex.split(lines[0])


def test_make_lab_opens_the_repository_root_on_lesson_00(tmp_path):
    cmd = lab_command()
    assert cmd[-1] == "notebooks/00_setup.ipynb"
    assert (os.geteuid() == 0) == ("--allow-root" in cmd), "--allow-root exactly when running as root"
    port, token = free_port(18888), secrets.token_hex(8)
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
    )
    extra = [
        "--no-browser",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
    ]
    proc = subprocess.Popen(
        [*cmd, *extra], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"jupyter lab exited: {proc.stderr.read()[-2000:]}"
            try:
                root = requests.get(f"{base}/api/contents", headers=auth, timeout=5)
                if root.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "jupyter lab did not answer within 90 s"
            time.sleep(0.5)
        names = {item["name"] for item in root.json()["content"]}
        assert {"README.md", "notebooks", "solutions", "data"} <= names, names
        lesson = requests.get(f"{base}/api/contents/notebooks/00_setup.ipynb", headers=auth, timeout=10)
        assert lesson.status_code == 200
        assert (
            requests.get(f"{base}/lab/tree/notebooks/00_setup.ipynb", headers=auth, timeout=10).status_code
            == 200
        )
    finally:
        kill_processes([psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)])
