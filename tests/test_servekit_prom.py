"""servekit.prom against real Prometheus text: prometheus_client's own exposition of a registry
this test fills, served by a local HTTP server, and a hand-written exposition like Ray's."""

from __future__ import annotations

import math

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from conftest import QuietHandler, local_http_server
from servekit.prom import bucket_delta, histogram_quantile, parse, scrape, select, total

BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0)


def filled_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    requests_total = Counter("app_requests", "Requests", ["route", "code"], registry=registry)
    latency = Histogram("app_latency_s", "Latency", ["replica"], buckets=BOUNDS, registry=registry)
    Gauge("app_replicas", "Replicas", registry=registry).set(2)
    requests_total.labels(route="/", code="200").inc(90)
    requests_total.labels(route="/", code="422").inc(10)
    for replica, values in {"a": [0.02] * 50, "b": [0.07] * 40 + [0.3] * 10}.items():
        for v in values:
            latency.labels(replica=replica).observe(v)
    return registry


def serving(body: bytes, status: int = 200):
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.reply(status, body, "text/plain; version=0.0.4")

    return local_http_server(Handler)


def test_scrape_a_served_registry():
    with serving(generate_latest(filled_registry())) as url:
        metrics = scrape(url + "metrics")
    assert metrics["app_replicas"] == [({}, 2.0)]
    assert total(metrics["app_requests_total"]) == 100
    assert total(metrics["app_requests_total"], code="422") == 10
    assert select(metrics["app_requests_total"], code="200") == [({"route": "/", "code": "200"}, 90.0)]
    assert total(metrics["app_latency_s_count"]) == 100
    assert total(metrics["app_latency_s_sum"]) == pytest.approx(50 * 0.02 + 40 * 0.07 + 10 * 0.3)
    buckets = metrics["app_latency_s_bucket"]
    assert {lab["le"] for lab, _ in buckets} == {"0.01", "0.05", "0.1", "0.5", "1.0", "+Inf"}
    # 50 in (0.01, 0.05], 40 in (0.05, 0.1], 10 in (0.1, 0.5]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.05)
    assert histogram_quantile(buckets, 0.7) == pytest.approx(0.05 + 0.05 * 20 / 40)
    assert histogram_quantile(buckets, 0.95) == pytest.approx(0.1 + 0.4 * 5 / 10)
    assert histogram_quantile(buckets, 0.5, replica="a") == pytest.approx(0.01 + 0.04 * 25 / 50)


def test_scrape_raises_on_http_errors():
    with serving(b"nope", status=503) as url, pytest.raises(requests.HTTPError):
        scrape(url)


RAY_LIKE = """\
# HELP ray_serve_num_http_requests_total The number of HTTP requests processed.
# TYPE ray_serve_num_http_requests_total counter
ray_serve_num_http_requests_total{application="s",method="POST",route="/s",status_code="200"} 40.0
ray_serve_num_http_requests_total{application="s",method="POST",route="/s",status_code="422"} 2.0
# HELP ray_my_latency_ms Handler latency.
# TYPE ray_my_latency_ms histogram
ray_my_latency_ms_bucket{deployment="D",replica="r1",le="10.0"} 3.0
ray_my_latency_ms_bucket{deployment="D",replica="r1",le="100.0"} 9.0
ray_my_latency_ms_bucket{deployment="D",replica="r1",le="+Inf"} 10.0
ray_my_latency_ms_count{deployment="D",replica="r1"} 10.0
ray_my_latency_ms_sum{deployment="D",replica="r1"} 420.0
"""


def test_parse_ray_like_text_and_window_deltas():
    after = parse(RAY_LIKE)
    assert total(after["ray_serve_num_http_requests_total"], status_code="200") == 40
    before = [({"deployment": "D", "replica": "r1", "le": le}, n) for le, n in (("10.0", 1), ("+Inf", 2))]
    window = bucket_delta(after["ray_my_latency_ms_bucket"], before)
    assert [v for _, v in window] == [2.0, 9.0, 8.0]
    assert histogram_quantile(window, 0.25) == pytest.approx(10.0)
    # beyond the last finite bound: that bound is the answer, as in PromQL
    assert histogram_quantile(after["ray_my_latency_ms_bucket"], 0.99) == 100.0


def test_quantile_edge_cases():
    assert math.isnan(histogram_quantile([], 0.5))
    assert math.isnan(histogram_quantile([({"le": "1"}, 0.0), ({"le": "+Inf"}, 0.0)], 0.5))
    with pytest.raises(ValueError, match="q must be"):
        histogram_quantile([({"le": "+Inf"}, 1.0)], 1.5)
    with pytest.raises(ValueError, match=r"\+Inf"):
        histogram_quantile([({"le": "1"}, 1.0)], 0.5)
    with pytest.raises(ValueError, match="_bucket"):
        histogram_quantile([({}, 1.0)], 0.5)
