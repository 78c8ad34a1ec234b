"""Lesson 09's service (course_apps/sentiment_service.py) on a live Serve cluster, fuzzed: no request
gets a 5xx, with or without the API key, and the service keeps serving.

* hypothesis (tests/http_fuzz.py's bodies) POSTs generated bodies to ``/predict`` with the right key,
  with wrong or odd keys, and without one: the key check must answer 401 before the body is read,
  and must not turn any body or key into a 5xx;
* schemathesis reads the app's OpenAPI schema and calls every route with the key;
* ``SlowEcho`` (the backpressure stand-in) gets odd ``seconds`` values.
Starts Ray: on a shared machine run it under the lock (``flock /tmp/ray.lock pytest ...``).
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from http_fuzz import FUZZ, REGRESSIONS, bodies, check_answer
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ray import serve

import servekit
from course_apps import sentiment_service

KEY = "lesson09-fuzz-key"
GOOD = {"text": "I love this course!"}
# header values requests can send (latin-1), odd ones included; None: no header at all
KEYS = st.one_of(
    st.none(), st.just(KEY), st.text(st.characters(max_codepoint=255, exclude_categories=["Cc"]), max_size=40)
)


@pytest.fixture(scope="module")
def url(serve_cluster, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("lesson09") / "api_key"
    key_file.write_text(KEY)
    model_dir = servekit.resolve_model("sentiment").location
    app = sentiment_service.SentimentAnalyzer.options(num_replicas=1).bind(model_dir, str(key_file))
    serve.run(app, name="fuzz09", route_prefix="/fuzz09")
    serve.run(sentiment_service.slow_app, name="fuzz09slow", route_prefix="/fuzz09slow")
    base = servekit.serve_url("/fuzz09")
    servekit.wait_until_healthy("fuzz09", f"{base}/health")
    yield base
    serve.delete("fuzz09")
    serve.delete("fuzz09slow")


def still_serving(url: str) -> None:
    r = requests.post(f"{url}/predict", json=GOOD, headers={"X-API-Key": KEY}, timeout=60)
    assert r.status_code == 200 and r.json()["label"] == "positive", (r.status_code, r.text[:200])


def test_bodies_with_the_key_get_no_server_error(url):
    seen: Counter = Counter()
    session = requests.Session()

    @settings(FUZZ, max_examples=200)
    @given(bodies(GOOD))
    def fuzz(case):
        body, content_type = case
        headers = {"X-API-Key": KEY} | ({"Content-Type": content_type} if content_type else {})
        response = session.post(f"{url}/predict", data=body, headers=headers, timeout=60)
        seen[response.status_code] += 1
        check_answer(response)

    for case in REGRESSIONS:
        fuzz = example(case)(fuzz)
    fuzz()
    print("with the key:", dict(seen))
    assert seen[200] and seen[400] and seen[422], "the bodies reached the model and the validation"
    still_serving(url)


def test_a_body_over_the_limit_gets_a_json_413_and_the_service_stays_up(url):
    """A body over MAX_BODY_BYTES gets a JSON 413, declared with a Content-Length or chunked (1 MB here),
    and the service stays up. (It is read whole first: FastAPI's max_body_size answers in plain text.)"""
    big = b'{"text": "' + b"a" * sentiment_service.MAX_BODY_BYTES + b'"}'
    declared = requests.post(f"{url}/predict", data=big, headers={"X-API-Key": KEY}, timeout=60)
    chunked = requests.post(
        f"{url}/predict", data=(b"a" * 65536 for _ in range(16)), headers={"X-API-Key": KEY}, timeout=60
    )
    assert declared.status_code == 413 and chunked.status_code == 413, (declared.text, chunked.text)
    check_answer(declared)
    assert "limit" in chunked.json()["error"], chunked.text  # check_answer cannot print a generator body
    still_serving(url)


def test_any_key_and_body_get_401_or_an_answer_never_5xx(url):
    seen: Counter = Counter()
    session = requests.Session()

    @settings(FUZZ, max_examples=150)
    @given(key=KEYS, case=bodies(GOOD), path=st.sampled_from(["/predict", "/admin/fail-health"]))
    def fuzz(key, case, path):
        body, content_type = case
        headers = {"Content-Type": content_type} if content_type else {}
        if key is not None:
            headers["X-API-Key"] = key
        if path == "/admin/fail-health" and key == KEY:
            return  # the right key there would break the replica on purpose
        response = session.post(f"{url}{path}", data=body, headers=headers, timeout=60)
        seen[response.status_code] += 1
        check_answer(response)
        if key != KEY:
            assert response.status_code == 401, (key, response.status_code)

    fuzz()
    print("any key:", dict(seen))
    still_serving(url)


def test_schemathesis_with_the_key_finds_no_server_error(url):
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    session, seen = requests.Session(), []
    for result in schema.get_all_operations():
        operation = result.ok()
        if "fail-health" in operation.path:
            continue

        @settings(FUZZ, max_examples=25)
        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        def fuzz(case):
            response = case.call(base_url=url, session=session, headers={"X-API-Key": KEY}, timeout=60)
            seen.append(response.status_code)
            assert response.status_code < 500, case.as_curl_command(base_url=url)

        fuzz()
    assert seen
    print("schemathesis:", Counter(seen))
    still_serving(url)


@pytest.mark.parametrize("seconds", ["nan", "abc", "-5", "", "1e-9", "0"])
def test_slow_echo_clamps_odd_seconds(url, seconds):
    r = requests.get(servekit.serve_url("/fuzz09slow"), params={"seconds": seconds}, timeout=30)
    assert r.status_code == 200 and 0 <= r.json()["slept_s"] <= 10, (seconds, r.status_code, r.text)
