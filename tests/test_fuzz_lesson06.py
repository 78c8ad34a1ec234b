"""Lesson 06's FastAPI app on a real local Serve cluster, fuzzed: no request may get a 5xx.

Two generators, both seeded (``derandomize=True``) so that a run is reproducible and bounded:
* schemathesis reads the live app's OpenAPI schema and generates requests that fit it (positive)
  and requests that break it (negative), for every route;
* hypothesis generates raw requests no schema describes, sent over a plain socket: invalid JSON,
  lone surrogates as JSON escapes, invalid UTF-8, deep and huge JSON, wrong content types, and
  missing, wrong or invalid ``Content-Length`` headers.
Every answer must be below 500, every 4xx must carry a message, and the app must keep serving.
The app's code is read from the notebook's cells tagged ``app-code`` (tests/lesson_code.py) and
runs on the shared live cluster (tests/conftest.py); the bodies come from tests/http_fuzz.py, with
the framings only a raw socket can send added here. Under FastAPI, a 4xx message is ``detail``,
or plain text for the 413 FastAPI's body limit sends before the app runs. It starts Ray: run it
under the shared lock on the course machine.
"""

from __future__ import annotations

import http.client
import socket
from collections import Counter
from urllib.parse import urlsplit

import http_fuzz
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from lesson_code import lesson_app

import servekit

NOTEBOOK = "solutions/06_fastapi_ingress.ipynb"
RAW_SEEN: Counter = Counter()
ROUTES = ("/predict", "/predict/batch", "/predict/stream")
LIMIT = 64 * 1024  # the lesson's MAX_BODY_BYTES


@pytest.fixture(scope="module")
def url(serve_cluster):
    """The lesson's app, deployed from its app-code cells on the shared live cluster."""

    def build(lesson):
        return lesson.SentimentAPI.bind(
            lesson.SentimentAnalyzer.bind(servekit.resolve_model("sentiment").location)
        )

    with lesson_app(NOTEBOOK, "fuzz06", build, health_path="/health") as base:
        yield base


def check_answer(status: int | None, body: bytes, what: str) -> None:
    """No 5xx; a 4xx carries a message. ``None``: the server closed without answering (allowed
    only for a request whose body never fully arrived)."""
    assert status is None or status < 500, f"{what}: got {status} {body[:200]!r}"
    if status is not None and 400 <= status < 500:
        message = body.decode("utf-8", "replace").strip()
        assert message and message not in ("{}", "null", '""'), f"{what}: {status} without a message"


def still_serving(url: str) -> None:
    r = requests.post(f"{url}/predict", json={"text": "I love this course!"}, timeout=60)
    assert r.status_code == 200 and r.json()["label"] == "positive", (r.status_code, r.text[:200])


# --- schemathesis: requests generated from the app's own OpenAPI schema ------------------------


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(url, mode):
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    session, seen = requests.Session(), []
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode == "negative" and operation.method.upper() == "GET":
            continue  # no parameters, no body: nothing to break

        @settings(http_fuzz.FUZZ, max_examples=12 if operation.method.upper() == "GET" else 30)
        @given(case=operation.as_strategy(generation_mode=generation))
        def fuzz(case):
            response = case.call(base_url=url, session=session, timeout=60)
            seen.append(response.status_code)
            check_answer(response.status_code, response.content, case.as_curl_command(base_url=url))

        fuzz()
    assert seen, "schemathesis generated no request"
    print(f"schemathesis {mode}: {len(seen)} requests, statuses {sorted(set(seen))}")
    still_serving(url)


# --- hypothesis: raw requests no schema describes -----------------------------------------------

GOOD = {"texts": ["I love this course!", "Awful service."]}  # fits every POST route
near_limit = st.integers(LIMIT - 64, LIMIT + 64).map(lambda n: b'{"text": "' + b"a" * (n - 12) + b'"}')
raw_bodies = st.one_of(
    http_fuzz.bodies({"text": "I love this course!"}),  # the shared generator: JSON, odd text, raw bytes
    http_fuzz.bodies(GOOD),
    st.tuples(near_limit, st.sampled_from(http_fuzz.CONTENT_TYPES)),
)
# how the body is framed: its true length, none (chunked), too long, too short, or nonsense
framings = st.sampled_from(["exact", "chunked", "none", "longer", "shorter", "huge", "negative", "word"])


def send_raw(url: str, path: str, body: bytes, content_type: str | None, framing: str) -> tuple:
    """POST over a plain socket, so the headers are exactly what we say; returns (status, body)."""
    parts = urlsplit(url)
    head = [f"POST {parts.path}{path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    if content_type is not None:
        head.append(f"Content-Type: {content_type}")
    length = {"exact": len(body), "longer": len(body) + 10, "shorter": max(len(body) - 1, 0)}
    length |= {"huge": 10**12, "negative": -1, "word": "ten"}
    if framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        payload = body
        if framing in length:
            head.append(f"Content-Length: {length[framing]}")
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        if framing == "longer":
            sock.shutdown(socket.SHUT_WR)  # the rest of the declared body never comes
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            assert framing == "longer", f"no answer to a request with framing {framing!r}"
            return None, b""
        return response.status, response.read()


@settings(http_fuzz.FUZZ, max_examples=150)
@given(path=st.sampled_from(ROUTES), case=raw_bodies, framing=framings)
def fuzz_raw(url, path, case, framing):
    body, content_type = case
    status, answer = send_raw(url, path, body, content_type or None, framing)
    RAW_SEEN[status] += 1
    check_answer(status, answer, f"POST {path} {content_type!r} {framing} {body[:80]!r}")


def test_raw_bodies_get_no_server_error(url):
    RAW_SEEN.clear()
    fuzz_raw(url)
    print(f"raw requests: {sum(RAW_SEEN.values())}, statuses {dict(RAW_SEEN)}")
    still_serving(url)


def test_the_two_classes_that_got_a_500(url):
    """Found by the fuzzers: FastAPI's 422 handler echoed input that cannot be written as UTF-8 JSON."""
    cases = {
        "lone surrogate": (b'{"text": "\\ud800"}', "application/json"),
        "surrogate in a name": (b'{"text": "hi", "\\udfff": 1}', "application/json"),
        "not UTF-8, text/plain": (b"\xff\xfe", "text/plain"),
        "not UTF-8, no type": (b"\x80abc", None),
    }
    for name, (body, content_type) in cases.items():
        for path in ROUTES:
            status, answer = send_raw(url, path, body, content_type, "exact")
            assert status == 422, (name, path, status, answer[:200])
            check_answer(status, answer, name)
    still_serving(url)
