"""servekit.ray_cluster's start loop with a stand-in for `ray start` (a child process that writes a log
and exits): which exits are tried again and what the error says. No Ray cluster starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servekit import ray_cluster
from servekit.cluster import free_port
from servekit.ray_cluster import LocalCluster, Node, NodeExited

RAY_OVERLOADED = (
    "INFO node.py:438 -- Failed to get node info b'RPC error: Deadline Exceeded'\n"
    "Exception: The current node timed out during startup. This could happen because some of the "
    "raylet failed to startup or the GCS has become overloaded.\n"
)
RAY_BROKEN = "ValueError: invalid resource name\n"


def fake_cluster(tmp_path, monkeypatch, logs: list[str]) -> tuple[LocalCluster, list[int]]:
    """A cluster whose n-th node start writes ``logs[n]`` to the node's log and exits 1."""
    cluster = LocalCluster(tmp_path, free_port(0), free_port(0), "t", {}, log_dir=tmp_path)
    starts: list[int] = []

    def start(self, name, args, metrics_port, num_cpus, resources):  # noqa: ANN001, ANN202
        text = logs[len(starts)]
        starts.append(len(starts))
        with open(tmp_path / f"{name}.log", "a") as log:
            log.write(text)
        process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
        process.wait()
        node = self.nodes[name] = Node(name, process, metrics_port, num_cpus, resources)
        return node

    monkeypatch.setattr(LocalCluster, "_start", start)
    return cluster, starts


def start_head(cluster: LocalCluster) -> Node:
    ports = {"metrics-export-port": free_port(0)}
    return cluster._start_bound("head", ports, lambda: [], 1, {}, timeout_s=5)


def test_a_head_that_timed_out_under_load_is_started_again_and_named_when_it_never_comes_up(
    tmp_path, monkeypatch, capsys
):
    cluster, starts = fake_cluster(tmp_path, monkeypatch, [RAY_OVERLOADED] * 3)
    with pytest.raises(NodeExited, match="timed out during startup"):
        start_head(cluster)
    assert len(starts) == ray_cluster.START_ATTEMPTS == 3
    assert capsys.readouterr().out.count("timed out during startup (a busy machine?); starting it again") == 2


def test_a_head_that_exits_for_another_reason_is_not_tried_again(tmp_path, monkeypatch):
    cluster, starts = fake_cluster(tmp_path, monkeypatch, [RAY_BROKEN, RAY_OVERLOADED, RAY_OVERLOADED])
    with pytest.raises(NodeExited, match="invalid resource name"):
        start_head(cluster)
    assert len(starts) == 1


def test_an_old_timeout_in_the_log_does_not_make_a_new_failure_retryable(tmp_path, monkeypatch):
    # The log is appended to on every start: only what this start wrote decides.
    cluster, starts = fake_cluster(tmp_path, monkeypatch, [RAY_OVERLOADED, RAY_BROKEN, RAY_OVERLOADED])
    with pytest.raises(NodeExited, match="invalid resource name"):
        start_head(cluster)
    assert len(starts) == 2
