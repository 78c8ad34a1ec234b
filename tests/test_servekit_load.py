"""The load generator against a real local HTTP server (no Ray needed)."""

import asyncio
import json
import time

import matplotlib
import pytest

from conftest import QuietHandler, local_http_server
from servekit.load import LoadReport, http_json_sender, run_load, run_load_async

matplotlib.use("Agg")


class Handler(QuietHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 500 if body.get("fail") else 200
        payload = json.dumps({"echo": body}).encode()
        self.reply(status, payload)


@pytest.fixture
def server_url():
    with local_http_server(Handler) as url:
        yield url


def test_http_load_counts_requests_statuses_and_errors(server_url):
    send = http_json_sender(server_url, lambda i: {"i": i, "fail": i % 10 == 0})
    report = run_load(send, total=50, concurrency=4, progress=False)
    assert report.total == 50 and report.concurrency == 4
    assert report.outcomes == {200: 45, 500: 5}
    assert report.errors == 5
    assert 0 < report.p50_ms <= report.p95_ms <= report.p99_ms
    assert report.throughput > 0
    s = report.summary()
    assert (
        s["requests"] == 50
        and s["errors"] == 5
        and set(s) >= {"p50_ms", "p95_ms", "p99_ms", "throughput_rps"}
    )


def test_exceptions_are_counted_not_raised():
    def send(i):
        if i == 3:
            raise ConnectionError("boom")
        return None

    report = run_load(send, total=8, concurrency=2, progress=False)
    assert report.errors == 1 and report.outcomes["ConnectionError"] == 1 and report.outcomes["ok"] == 7


def test_async_load_respects_concurrency_and_sends_each_index_once():
    in_flight, peak, seen = 0, 0, []

    async def send(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        seen.append(i)
        return 200

    report = asyncio.run(run_load_async(send, total=40, concurrency=5, progress=False))
    assert sorted(seen) == list(range(40))
    assert peak == 5
    assert report.total == 40 and report.errors == 0
    assert report.p50_ms >= 10


def test_plot_has_latency_and_histogram_panels():
    report = LoadReport(
        concurrency=2, duration_s=1.0, started_s=[0.0, 0.1, 0.2], latencies_s=[0.01, 0.02, 0.03]
    )
    fig = report.plot("demo")
    assert len(fig.axes) == 2
    assert "req/s" in fig.axes[0].get_title()
    assert [t.get_text()[:3] for t in fig.axes[1].get_legend().get_texts()] == ["p50", "p95", "p99"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        run_load(lambda i: None, total=0, concurrency=1, progress=False)


def test_async_load_stops_starting_requests_once_stop_says_so():
    sent = []

    async def send(i):
        sent.append(i)
        await asyncio.sleep(0.001)
        return 200

    report = asyncio.run(
        run_load_async(send, total=1000, concurrency=3, progress=False, stop=lambda: len(sent) >= 10)
    )
    assert 10 <= report.total < 1000 and report.total == len(sent)
    assert sorted(report.indices) == sorted(sent), "each row says which request it was"


def test_thread_load_records_which_request_each_row_is():
    report = run_load(lambda i: 200, total=12, concurrency=3, progress=False)
    assert sorted(report.indices) == list(range(12))


def test_thread_load_starts_no_request_after_its_budget():
    def send(i):
        time.sleep(0.05)
        return 200

    report = run_load(send, total=10_000, concurrency=2, progress=False, budget_s=0.3)
    assert 2 <= report.total < 10_000, "the first requests start, the rest are never sent"
    assert max(report.started_s) <= 0.3 and report.errors == 0
    assert report.outcomes == {200: report.total}
    with pytest.raises(ValueError):
        run_load(send, total=1, concurrency=1, budget_s=0)
