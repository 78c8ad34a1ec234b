"""servekit.start_mlflow_server: a real `mlflow server` on 127.0.0.1, used, then stopped by its PID."""

from __future__ import annotations

import psutil
import pytest

from servekit.mlflow_server import start_mlflow_server


def test_server_starts_answers_and_stops_with_all_its_processes(tmp_path):
    from mlflow import MlflowClient

    with start_mlflow_server(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "artifacts", port=0) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.healthy()
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        assert len(family) == 2, "CLI + one uvicorn worker, no job runner: " + repr(
            [p.cmdline()[:4] for p in family]
        )
        client = MlflowClient(tracking_uri=server.url)
        experiment = client.create_experiment("kit-test")
        assert client.get_experiment(experiment).artifact_location.startswith("mlflow-artifacts:")
    assert server.stop() is not None and not server.running(), "stopped, and stop() is safe twice"
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)
    assert (tmp_path / "mlflow.db").exists()


def test_a_server_that_cannot_start_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="mlflow server exited"):
        start_mlflow_server("notascheme://nowhere", tmp_path / "artifacts", port=0, timeout_s=60)


def test_start_without_waiting_then_wait(tmp_path):
    server = start_mlflow_server(
        f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "artifacts", port=0, wait=False
    )
    try:
        assert server.running()
        server.wait_until_healthy(timeout_s=90)
        assert server.healthy()
    finally:
        server.stop()
    assert not server.running() and not server.healthy()
