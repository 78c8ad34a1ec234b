"""Run a real ``mlflow server`` on 127.0.0.1 beside a notebook, and stop it by its PID.

The server gets its own session (process group), so stopping it reaches the CLI and the
uvicorn worker it spawns, and nothing else. It runs with one worker and without MLflow's
job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``): a default server is three
Python processes of about 250 MB each, too much beside Ray on a 2 GB Binder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from servekit.cluster import free_port
from servekit.wait import wait_for


@dataclass
class MlflowServer:
    """A started server: its address, its PID, where it logs. ``stop()`` is safe to call twice."""

    url: str
    pid: int
    log_path: Path
    _proc: subprocess.Popen = field(repr=False)

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=2).text.strip() == "OK"
        except requests.RequestException:
            return False

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_until_healthy(self, timeout_s: float = 90.0) -> None:
        """Block until ``/health`` answers OK; stop the server and raise if it exits or times out."""
        try:
            wait_for(
                lambda: self.healthy() or not self.running(), timeout_s, f"mlflow server at {self.url}/health"
            )
        except BaseException:
            self.stop()
            raise
        if not self.running():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            code = self._proc.returncode
            raise RuntimeError(f"mlflow server exited with code {code}; end of {self.log_path}:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout_s``; returns the exit code."""
        if self._proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self._proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        return self._proc.poll()

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_mlflow_server(
    backend_store_uri: str,
    artifacts_dir: Path,
    port: int = 5000,
    log_path: Path | None = None,
    wait: bool = True,
    timeout_s: float = 90.0,
) -> MlflowServer:
    """Start ``mlflow server`` on 127.0.0.1 (``port``, or a free one) and wait until ``/health`` says OK.

    ``backend_store_uri`` is the tracking and registry database (e.g. ``sqlite:////abs/mlflow.db``);
    the server stores artifacts under ``artifacts_dir`` and serves them to clients over HTTP.
    With ``wait=False`` it returns at once (the server boots in the background, a few seconds);
    call ``server.wait_until_healthy()`` before using it. If the server exits, the error has the
    end of its log; on a timeout it is stopped first. Use it as a context manager, or ``stop()`` it.
    """
    artifacts_dir = Path(artifacts_dir).resolve()
    log_path = Path(log_path) if log_path else artifacts_dir.parent / "mlflow-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    chosen = free_port(port)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1",
        "--port", str(chosen),
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", str(artifacts_dir),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{chosen}", proc.pid, log_path, proc)
    if wait:
        server.wait_until_healthy(timeout_s)
    return server
