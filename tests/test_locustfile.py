"""course_apps/locustfile.py, run as a learner runs it: ``locust --headless`` from a terminal against
a live Serve app, stats read back from Locust's CSV.

The app is lesson 01's real sentiment service (its solution's ``app-code`` cells, the packaged model),
so the check covers the contract the locustfile relies on: 200 with label/score for tweets, 4xx with
an ``error`` message for the bad bodies. Starts Ray: on a shared machine run it under the lock
(``flock /tmp/ray.lock pytest ...``).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from lesson_code import lesson_app

import servekit
from conftest import QuietHandler, local_http_server
from servekit.models import ModelUnavailable
from servekit.paths import REPO_ROOT

NAME = "locust01"


@pytest.fixture(scope="module")
def sentiment_url(serve_cluster):
    try:
        model_dir = servekit.resolve_model("sentiment").location
    except ModelUnavailable as exc:  # pragma: no cover - the model ships with the course's pins
        pytest.skip(str(exc))
    build = lambda lesson: lesson.SentimentAnalyzer.bind(model_dir)
    with lesson_app("solutions/01_first_deployment.ipynb", NAME, build) as url:
        yield url


def run_locust(host: str, path: str, csv_prefix, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "course_apps" / "locustfile.py")]
    cmd += ["--headless", "-u", "4", "-r", "4", "-t", "5s", "--csv", str(csv_prefix), "--only-summary"]
    cmd += ["--host", host, "--path", path, "--loglevel", "WARNING", *extra]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a hung run: stop it by its PID, then fail
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"locust did not stop within 60 s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def read_stats(csv_prefix) -> dict[str, dict[str, str]]:
    with open(f"{csv_prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_locust_headless_run_counts_good_and_bad_bodies(sentiment_url, tmp_path):
    host, _, path = sentiment_url.partition(f"/{NAME}")
    result = run_locust(host, f"/{NAME}", tmp_path / "run", "--bad-share", "0.3")
    stats = read_stats(tmp_path / "run")
    total = stats["Aggregated"]
    print(result.stdout[-2000:])
    assert int(total["Request Count"]) > 0, result.stdout[-3000:]
    assert int(total["Failure Count"]) == 0, (result.stdout[-3000:], stats)
    assert result.returncode == 0, result.stdout[-3000:]
    assert int(stats["good"]["Request Count"]) > 0
    assert any(name.startswith("bad: ") and int(row["Request Count"]) > 0 for name, row in stats.items())


def test_locust_counts_a_wrong_answer_as_a_failure(sentiment_url, tmp_path):
    """The same run against a path the service does not serve (404 with no JSON error) must fail."""
    host, _, _ = sentiment_url.partition(f"/{NAME}")
    result = run_locust(host, "/no-such-app", tmp_path / "wrong", "--bad-share", "0.5")
    total = read_stats(tmp_path / "wrong")["Aggregated"]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == int(total["Request Count"]), result.stdout[-3000:]
    assert result.returncode == 1


class _KeyedService(QuietHandler):
    """The course's contract behind an API key: 401 without ``X-API-Key: k3y``."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("X-API-Key") != "k3y":
            status, answer = 401, {"error": "missing or wrong API key"}
        else:
            try:
                text = json.loads(raw).get("text")
                ok = isinstance(text, str) and 0 < len(text.strip()) and len(text) <= 2000
                status, answer = (200, {"label": "neutral", "score": 0.5}) if ok else (422, {"error": "bad"})
            except (ValueError, AttributeError):
                status, answer = 400, {"error": "not JSON"}
        self.reply(status, json.dumps(answer).encode())


def test_locust_sends_the_api_key_from_a_file(tmp_path):
    """No Ray: a local stand-in that refuses requests without the key. With the key file every
    request succeeds; without it every good request fails (401) while bad ones still pass as 4xx."""
    key = tmp_path / "api-key"
    key.write_text("k3y\n")
    with local_http_server(_KeyedService) as url:
        host = url.rstrip("/")
        with_key = run_locust(host, "/predict", tmp_path / "key", "--api-key-file", str(key))
        without = run_locust(host, "/predict", tmp_path / "nokey", "--api-key-file", "", "--bad-share", "0")
    stats = read_stats(tmp_path / "key")
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0, with_key.stdout[-3000:]
    assert with_key.returncode == 0
    refused = read_stats(tmp_path / "nokey")["Aggregated"]
    assert int(refused["Failure Count"]) == int(refused["Request Count"]) > 0, without.stdout[-3000:]
    assert "401" in without.stdout
