"""Lesson 11's OpenAI-compatible chat app on a real local Serve cluster: fuzzed, and its exercise's check.

No request may get a 5xx, and the exercise's check (the code cell after the exercise) must fail
plausible wrong answers and pass the solution, each run against the same live app.

The app's code is read from the notebook's cells tagged ``app-code`` (tests/lesson_code.py) and runs
on the shared live cluster (tests/conftest.py). hypothesis generates request bodies around a good
chat request (tests/http_fuzz.py: odd strings, wrong types, huge numbers, deep JSON, invalid UTF-8,
odd content types) plus the lesson's own limits (max_tokens around its cap, the stream flag, long
prompts); every answer must be below 500, and every 4xx must carry OpenAI's ``error.message``.
Generation is capped small (max_tokens <= 8 in good bodies) so that a run stays short on 2 cores.
It starts Ray: run it under the shared lock on the course machine.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json

import http_fuzz
import nbformat
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from lesson_code import lesson_app

import servekit
from servekit.paths import REPO_ROOT

NOTEBOOK = "solutions/11_llm_serving.ipynb"
GOOD = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def url(serve_cluster):
    def build(lesson):
        return lesson.OpenAIServer.bind(lesson.LLMServer.bind(servekit.resolve_model("chat").location))

    with lesson_app(NOTEBOOK, "fuzz11", build, health_path="/v1/models") as base:
        yield base


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


def test_a_body_over_the_limit_gets_413_with_a_message_declared_or_chunked(url):
    """64 KiB is the limit: a declared Content-Length over it and a chunked body that grows past it."""
    big = json.dumps(GOOD | {"messages": [{"role": "user", "content": "x" * 15_000}] * 6}).encode()
    headers = {"Content-Type": "application/json"}
    declared = requests.post(f"{url}/v1/chat/completions", data=big, headers=headers, timeout=60)
    pieces = iter([big[i : i + 8192] for i in range(0, len(big), 8192)])  # no Content-Length
    chunked = requests.post(f"{url}/v1/chat/completions", data=pieces, headers=headers, timeout=60)
    for what, r in (("declared", declared), ("chunked", chunked)):
        assert r.status_code == 413, f"{what}: {r.status_code} {r.text[:200]}"
        assert "limit is 65536" in r.json()["error"]["message"], f"{what}: {r.text[:200]}"
    still_serving(url)


def exercise_cells() -> tuple[str, str]:
    """The exercise cell (its solution) and the check cell right after it, as the notebook has them."""
    cells = [c for c in nbformat.read(REPO_ROOT / NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    i = next(i for i, c in enumerate(cells) if "### BEGIN SOLUTION" in c.source)
    return cells[i].source, cells[i + 1].source


def run_check(url: str, stream_text_source: str) -> None:
    """Define ``stream_text`` from the given source, then run the notebook's check cell on it."""
    from ray import serve

    llm = serve.get_deployment_handle("LLMServer", app_name="fuzz11")
    story = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    namespace = {
        "asyncio": asyncio, "requests": requests, "url": url, "llm": llm, "MODEL_NAME": GOOD["model"],
        "story": {"model": GOOD["model"], "messages": story}, "llm_stats": llm.get_stats,
    }  # fmt: skip
    exec(stream_text_source, namespace)
    check = compile(exercise_cells()[1], "<check cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(check, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)


WRONG = {
    "the stub": "async def stream_text(handle, messages, max_tokens):\n    raise NotImplementedError()\n",
    "yields the replica's dicts": """
async def stream_text(handle, messages, max_tokens):
    async for item in handle.options(stream=True).generate.remote(messages, max_tokens):
        yield item
""",
    "one piece at the end, not streamed": """
async def stream_text(handle, messages, max_tokens):
    items = [i async for i in handle.options(stream=True).generate.remote(messages, max_tokens)]
    yield "".join(i["text"] for i in items if "text" in i)
""",
    "the first item as text": """
async def stream_text(handle, messages, max_tokens):
    async for item in handle.options(stream=True).generate.remote(messages, max_tokens):
        yield item.get("text", "")
""",
    "no stream=True": """
async def stream_text(handle, messages, max_tokens):
    async for item in handle.generate.remote(messages, max_tokens):
        yield item["text"]
""",
    "a coroutine, not a generator": """
async def stream_text(handle, messages, max_tokens):
    items = [i async for i in handle.options(stream=True).generate.remote(messages, max_tokens)]
    return [i["text"] for i in items if "text" in i]
""",
    "no finally: the replica goes on when the consumer stops": """
async def stream_text(handle, messages, max_tokens):
    async for item in handle.options(stream=True).generate.remote(messages, max_tokens):
        if "text" in item:
            yield item["text"]
""",
    "never stops the replica": """
async def stream_text(handle, messages, max_tokens):
    tokens = handle.options(stream=True).generate.remote(messages, max_tokens)
    keep.append(tokens)  # still referenced: the replica is never told to stop
    async for item in tokens:
        if "text" in item:
            yield item["text"]
keep = []
""",
}


@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_the_exercise_check_fails_a_wrong_answer(url, wrong):
    with pytest.raises(Exception) as failed:
        run_check(url, WRONG[wrong])
    print(f"{wrong}: {type(failed.value).__name__}: {failed.value}")


def test_the_exercise_check_passes_the_solution(url):
    run_check(url, exercise_cells()[0])
