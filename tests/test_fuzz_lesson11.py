"""Lesson 11's OpenAI-compatible chat app on a real local Serve cluster, fuzzed: no request may get a 5xx.

The app's code is read from the notebook's cells tagged ``app-code`` (tests/lesson_code.py) and runs
on the shared live cluster (tests/conftest.py). hypothesis generates request bodies around a good
chat request (tests/http_fuzz.py: odd strings, wrong types, huge numbers, deep JSON, invalid UTF-8,
odd content types) plus the lesson's own limits (max_tokens around its cap, the stream flag, long
prompts); every answer must be below 500, and every 4xx must carry OpenAI's ``error.message``.
Generation is capped small (max_tokens <= 8 in good bodies) so that a run stays short on 2 cores.
It starts Ray: run it under the shared lock on the course machine.
"""

from __future__ import annotations

import json

import http_fuzz
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from lesson_code import load_app, unload

import servekit

NOTEBOOK = "solutions/11_llm_serving.ipynb"
GOOD = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def url(serve_cluster):
    from ray import serve

    module = load_app(NOTEBOOK, "lesson11_fuzzed")
    try:
        llm = module.LLMServer.bind(servekit.resolve_model("chat").location)
        serve.run(module.OpenAIServer.bind(llm), name="fuzz11", route_prefix="/fuzz11")
        base = servekit.serve_url("/fuzz11")
        servekit.wait_until_healthy("fuzz11", f"{base}/v1/models")
        yield base
        serve.delete("fuzz11")
    finally:
        unload(module)


def check(response: requests.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json().get("error", {})
        assert isinstance(error, dict) and error.get("message"), (
            f"{what}: no error.message: {response.text[:300]}"
        )


def still_serving(url: str) -> None:
    r = requests.post(f"{url}/v1/chat/completions", json=GOOD, timeout=60)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion", r.text[:300]


def test_generated_bodies_get_no_server_error(url):
    report = http_fuzz.fuzz_http_app(
        f"{url}/v1/chat/completions", good=GOOD, max_examples=120, message_keys=("error",)
    )
    print(report)


limits = st.fixed_dictionaries(
    {
        "max_tokens": st.one_of(
            st.integers(-2, 8), st.integers(250, 260), st.just(10**40), st.text(max_size=3)
        ),
        "stream": st.one_of(st.booleans(), st.just("true"), st.integers(0, 1), st.none()),
        "content": st.one_of(st.text(max_size=30), st.builds(lambda n: "word " * n, st.integers(1500, 2100))),
        "temperature": st.one_of(st.just(0.0), st.floats(-1, 3), st.just("hot")),
    }
)


@settings(http_fuzz.FUZZ, max_examples=40)
@given(case=limits)
def fuzz_limits(url, case):
    body = GOOD | {k: v for k, v in case.items() if k != "content"}
    body["messages"] = [{"role": "user", "content": case["content"]}]
    r = requests.post(
        f"{url}/v1/chat/completions", json=body, timeout=120, stream=bool(case["stream"] is True)
    )
    if r.status_code == 200 and body.get("stream") is True:
        lines = [line for line in r.iter_lines(decode_unicode=True) if line]
        assert lines[-1] == "data: [DONE]", lines[-3:]
        for line in lines[:-1]:
            assert "error" not in json.loads(line[6:]), line
    check(r, json.dumps(body)[:200])


def test_the_limits_get_4xx_not_5xx(url):
    fuzz_limits(url)
    still_serving(url)
