"""Lesson 08's router and versions (course_apps/sentiment_ab.py) and its z-test, without Ray.

The router's class is used directly with a stand-in for the versions handle, and gets real
Starlette requests: sticky, weighted, monotone assignment; the course's 4xx for every bad body;
a pinned unknown version as a 404; shadow mirroring after the answer. The lesson's two-proportion
z-test (the notebook's cell tagged ``stats-code``) is checked against SciPy.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from lesson_code import load_app, unload
from starlette.requests import Request

from course_apps.sentiment_ab import Head, VariantRouter, assign, bucket, check_config

USERS = [f"user-{i}" for i in range(2000)]


def test_bucket_is_sha256_and_stable():
    # the first 8 bytes of sha256(b"ada") as a fraction of 2**64: the same in every process
    assert bucket("ada") == int("fdee430d40bd57de", 16) / 2**64
    assert bucket("ada") == bucket("ada") and bucket("ada") != bucket("bob")
    assert all(0 <= bucket(u) < 1 for u in USERS[:200])


def test_assign_is_sticky_and_follows_the_weights():
    weights = {"1": 70, "2": 30}
    first = [assign(u, weights) for u in USERS]
    assert first == [assign(u, weights) for u in USERS]
    share = first.count("2") / len(USERS)
    assert abs(share - 0.3) < 0.04, share
    assert {assign(u, {"1": 100, "2": 0}) for u in USERS} == {"1"}
    assert {assign(u, {"1": 0, "2": 100}) for u in USERS} == {"2"}


def test_a_growing_canary_only_adds_users():
    on_canary = [{u for u in USERS if assign(u, {"2": 100 - p, "3": p}) == "3"} for p in (0, 10, 50, 100)]
    assert on_canary[0] == set() and on_canary[-1] == set(USERS)
    assert on_canary[0] <= on_canary[1] <= on_canary[2] <= on_canary[3]


@pytest.mark.parametrize(
    "config",
    [
        {"weights": {}},
        {"weights": {"1": -1}},
        {"weights": {"1": 0}},
        {"weights": {"v1": 100}},
        {"weights": {"1": 100}, "shadow": {"version": "x", "share": 0.5}},
        {"weights": {"1": 100}, "shadow": {"version": "2", "share": 1.5}},
    ],
)
def test_bad_router_configs_fail_the_deploy(config):
    with pytest.raises(ValueError):
        check_config(config)


class FakeVersions:
    """Stands in for the SentimentVersions handle: ``options(...).predict.remote(text)``."""

    def __init__(self, known=("1", "2", "3")):
        self.known, self.calls = known, []

    def options(self, multiplexed_model_id: str):
        outer = self

        class Method:
            def remote(self, text: str):
                outer.calls.append((multiplexed_model_id, text))
                return outer._answer(multiplexed_model_id, text)

        class Bound:
            predict = Method()

        return Bound()

    async def _answer(self, version: str, text: str) -> dict:
        if version not in self.known:
            return {"error": f"no registered version {version!r} of model 'sentiment'"}
        label = "positive" if version != "3" else "negative"
        return {"label": label, "score": 0.9, "scores": {label: 0.9}, "model_version": int(version)}


def router(config: dict, versions: FakeVersions | None = None):
    instance = VariantRouter.func_or_class(versions or FakeVersions())
    instance.reconfigure(config)
    return instance


def post(instance, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    raw = [(b"content-type", b"application/json")] + [
        (k.encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw}

    async def call():
        answer = await instance(Request(scope, receive))
        await asyncio.sleep(0.01)  # let mirrored requests finish
        return answer

    answer = asyncio.run(call())
    if isinstance(answer, dict):
        return 200, answer
    return answer.status_code, json.loads(answer.body)


def test_answers_with_the_course_schema_and_the_version():
    status, body = post(router({"weights": {"1": 50, "2": 50}}), b'{"text": "nice", "user_id": "ada"}')
    assert status == 200 and set(body) == {"label", "score", "scores", "model_version"}
    assert str(body["model_version"]) == assign("ada", {"1": 50, "2": 50})


SHAPE = 'the body must be JSON like {"text": "...", "user_id": "..."}'
SURROGATE = "is not valid Unicode (it has a lone surrogate)"
LONG_TEXT = json.dumps({"text": "so good " * 500, "user_id": "a"}).encode()
LONG_USER = json.dumps({"text": "hi", "user_id": "u" * 65}).encode()


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"text=hello", 400, SHAPE),
        (b"[" * 100_000, 400, SHAPE),
        (b'{"text": ' + b"7" * 5000 + b"}", 400, SHAPE),
        (b'{"user_id": "ada"}', 422, "missing field 'text'"),
        (b'{"text": "hi"}', 422, "missing field 'user_id'"),
        (b'["hi"]', 422, "missing field 'text'"),
        (b'{"text": 42, "user_id": "ada"}', 422, "'text' must be a string, not int"),
        (b'{"text": "   ", "user_id": "ada"}', 422, "'text' is empty"),
        (b'{"text": "caf\\ud800", "user_id": "ada"}', 422, f"'text' {SURROGATE}"),
        (LONG_TEXT, 413, "'text' has 4000 characters; the limit is 2000"),
        (b'{"text": "hi", "user_id": 7}', 422, "'user_id' must be a string, not int"),
        (b'{"text": "hi", "user_id": null}', 422, "'user_id' must be a string, not NoneType"),
        (b'{"text": "hi", "user_id": ""}', 422, "'user_id' is empty"),
        (LONG_USER, 422, "'user_id' has 65 characters; the limit is 64"),
        (b'{"text": "hi", "user_id": "\\udfff"}', 422, f"'user_id' {SURROGATE}"),
    ],
)  # fmt: skip
def test_bad_bodies_get_the_course_4xx(body, status, message):
    versions = FakeVersions()
    assert post(router({"weights": {"1": 100}}, versions), body) == (status, {"error": message})
    assert versions.calls == [], "no model call for a bad body"


def test_a_pinned_version_skips_the_hash_and_an_unknown_one_is_a_404(monkeypatch):
    import course_apps.sentiment_ab as module

    instance = router({"weights": {"1": 100}})
    monkeypatch.setattr(module.serve, "get_multiplexed_model_id", lambda: "2")
    assert post(instance, b'{"text": "hi", "user_id": "ada"}')[1]["model_version"] == 2
    monkeypatch.setattr(module.serve, "get_multiplexed_model_id", lambda: "99")
    status, body = post(instance, b'{"text": "hi", "user_id": "ada"}')
    assert status == 404 and "no registered version '99'" in body["error"]


def test_shadow_mirrors_after_the_answer_and_counts_agreement():
    versions = FakeVersions()
    instance = router({"weights": {"2": 100}, "shadow": {"version": "3", "share": 1.0}}, versions)
    for user in ("ada", "bob", "cy"):
        assert post(instance, json.dumps({"text": "hi", "user_id": user}).encode())[1]["model_version"] == 2
    assert [v for v, _ in versions.calls] == ["2", "3"] * 3, "the caller's version first, then the mirror"
    report = instance.traffic()
    assert report["mirrored"] == 3 and report["agreed"] == 0 and report["failed"] == 0
    instance.reconfigure({"weights": {"2": 100}, "shadow": None})
    assert instance.traffic()["mirrored"] == 0, "a new shadow setting starts its counts afresh"


def test_a_head_reports_its_eviction_once():
    evicted = []
    head = Head("1", {}, evicted.append)
    head.__del__()
    head.__del__()
    assert evicted == ["1"]


@pytest.fixture(scope="module")
def stats():
    module = load_app("solutions/08_ab_testing.ipynb", "lesson08_stats", tag="stats-code")
    yield module
    unload(module)


@pytest.mark.parametrize(
    "counts", [(60, 120, 90, 118), (45, 100, 47, 100), (10, 30, 25, 31), (500, 1000, 480, 990)]
)
def test_two_proportion_z_test_matches_scipy(stats, counts):
    from scipy.stats import chi2_contingency, norm

    s1, n1, s2, n2 = counts
    z, p = stats.two_proportion_z_test(s1, n1, s2, n2)
    chi2, p_scipy, _, _ = chi2_contingency([[s1, n1 - s1], [s2, n2 - s2]], correction=False)
    assert z**2 == pytest.approx(chi2, rel=1e-9) and p == pytest.approx(p_scipy, rel=1e-9)
    assert p == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    assert math.copysign(1, z) == math.copysign(1, s2 / n2 - s1 / n1)


def test_z_test_without_variation_is_no_evidence(stats):
    assert stats.two_proportion_z_test(10, 10, 20, 20) == (0.0, 1.0)
