"""The ``serve_multiplexed_model_id`` header of lesson 08's router, fuzzed with generated values.

A request may pin a registered version with the header (course_apps/sentiment_ab.py). For any value
a client can send: no 5xx; a registered version ("1", "2") answers from that version; a blank value
pins nothing (the user's hash decides); anything else is a 404 with ``{"error": message}``; and the
app keeps serving. The app is lesson 08's, deployed as tests/test_fuzz_lesson08.py deploys it (its
fixture, against a real SQLite registry with versions 1 and 2).

What is sent and expected follows HTTP, not Python's ``str.strip``: a header value is visible
ASCII, SP, HTAB and bytes >= 0x80 (RFC 9110 section 5.5), and the optional whitespace around it,
SP and HTAB only, is not part of it. Values go out as UTF-8 bytes through ``http.client``, which
sends them as given (``requests`` refuses a value with leading whitespace on the client side).
Control characters other than HTAB are not generated: the server refuses them before Serve sees the
request (uvicorn's plain-text 400). A value that is not UTF-8 has its own test below.
Starts Ray: on a shared machine run it under the lock (``flock /tmp/ray.lock pytest ...``).
"""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from test_fuzz_lesson08 import GOOD, router_url  # noqa: F401 (router_url is the fixture)
from test_lesson08_app import FakeVersions, post, router

REGISTERED = {"1", "2"}  # the fixture's registry
OWS = " \t"  # HTTP's optional whitespace: what may surround a header value without being part of it
NAMES = ("serve_multiplexed_model_id", "serve-multiplexed-model-id", "Serve_Multiplexed_Model_Id")
# What a header value may hold once encoded as UTF-8: no control characters but HTAB, no surrogates.
VALUE_CHARS = st.one_of(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(exclude_categories=("Cc", "Cs")),
    st.sampled_from(OWS),
)
NEAR_VERSIONS = [
    "1",
    "2",
    "3",
    "0",
    "01",
    "1.0",
    "+1",
    "-1",
    "１",
    "٢",
    "99",
    "999999",
    "1000000",
    "v2",
    "1 2",
]
VALUES = st.one_of(
    st.text(VALUE_CHARS, max_size=30),
    st.builds(  # version-like values, with whitespace around them
        lambda pre, value, post: pre + value + post,
        st.text(st.sampled_from(OWS), max_size=3),
        st.sampled_from(NEAR_VERSIONS),
        st.text(st.sampled_from(OWS), max_size=3),
    ),
    st.builds(
        lambda unit, n: unit * n, st.sampled_from(["1", "x", "é", " 2", "🙂"]), st.integers(50, 20_000)
    ),
)


def expected(value: str) -> str | None:
    """What the router should do with a header value: "1"/"2" (pinned), None (no pin) or "404"."""
    pinned = value.strip(OWS)
    if not pinned:
        return None
    return pinned if pinned in REGISTERED else "404"


@pytest.mark.parametrize(
    "value, version", [("2", 2), ("2 ", 2), ("2\t \t", 2), ("", 1), (" \t", 1), ("2\u00a0", None)]
)
def test_the_router_strips_only_http_whitespace_from_a_pinned_version(monkeypatch, value, version):
    """Without Ray: what the router pins for a header value as Serve's proxy hands it over (the HTTP
    server has already removed the leading SP/HTAB); a no-break space is not HTTP whitespace."""
    import course_apps.sentiment_ab as module

    versions = FakeVersions(known=("1", "2"))
    monkeypatch.setattr(module.serve, "get_multiplexed_model_id", lambda: value)
    status, body = post(router({"weights": {"1": 100}}, versions), b'{"text": "hi", "user_id": "ada"}')
    if version is None:
        assert status == 404 and body["error"]
    else:
        assert (status, body["model_version"]) == (200, version)


def send(url: str, headers: dict[str, bytes]) -> tuple[int, bytes]:
    """POST lesson 08's good body with ``headers``, sent byte for byte; (status, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        body = json.dumps(GOOD).encode()
        connection.request(
            "POST", parts.path, body=body, headers={"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_any_multiplexed_model_id_header_gets_its_version_or_a_404(router_url):  # noqa: F811
    statuses, start = Counter(), time.monotonic()

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(st.sampled_from(NAMES), VALUES)
    @example(NAMES[0], "")
    @example(NAMES[0], " \t ")
    @example(NAMES[0], " 2\t")  # HTTP's server strips only the leading whitespace: the app the rest
    @example(NAMES[1], "2 ")
    @example(NAMES[0], "99")
    @example(NAMES[0], "x" * 20_000)
    def one_value(name: str, value: str) -> None:
        status, raw = send(router_url, {name: value.encode("utf-8")})
        statuses[status] += 1
        where = f"{name}: {value[:60]!r} ({len(value)} characters)"
        assert status < 500, f"{status} for {where}: {raw[:300]!r}"
        answer = json.loads(raw)
        want = expected(value)
        if want == "404":
            assert status == 404 and answer.get("error"), f"{status} for {where}: {answer!r}"
        else:
            assert status == 200, f"{status} for {where}: {answer!r}"
            served = str(answer["model_version"])
            assert served == want if want else served in REGISTERED, f"version {served} for {where}"

    one_value()
    seconds = time.monotonic() - start
    print(f"lesson 08 multiplexed id header: {sum(statuses.values())} values in {seconds:.1f} s")
    print("statuses:", dict(sorted(statuses.items())))
    assert send(router_url, {})[0] == 200, "the app stopped serving"
    status, raw = send(router_url, {NAMES[0]: b"2"})
    assert status == 200 and json.loads(raw)["model_version"] == 2


def test_a_header_value_that_is_not_utf8(router_url):  # noqa: F811
    """Bytes >= 0x80 that are not UTF-8 (an ISO-8859-1 client's "é"): HTTP allows them in a value.

    Ray 2.60's proxy decodes the header's value with ``bytes.decode()`` before any app code runs
    (``ray/serve/_private/proxy.py``, ``HTTPProxy.setup_request_context_and_handle``), so such a
    value gets the proxy's plain-text 500, which no app can turn into a 4xx. Checked here: the app
    keeps serving; the 500 is an expected failure until Ray handles it.
    """
    status, raw = send(router_url, {NAMES[0]: b"caf\xe9"})
    print("non-UTF-8 header value:", status, raw[:200])
    assert send(router_url, {})[0] == 200, "the app stopped serving"
    if status >= 500:
        pytest.xfail(f"Serve's proxy answers {status} {raw[:40]!r} to a header value that is not UTF-8")
    assert status < 500
