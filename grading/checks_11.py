"""Hidden checks of lesson 11 (serving an LLM) as an assignment; points in rubric_11.json.

Run by servekit/grade.py against the live ``llm`` app at the lesson's Cleanup section, from the
grader's own process (HTTP), except the exercise: ``stream_text`` is called in the kernel on a
prompt the learner never saw, and its pieces are compared with the app's JSON answer fetched here.
Each check returns ``(passed, reason)``; ``live.kernel`` is untrusted.
"""

from __future__ import annotations

import json

from servekit.grader.rubric import short

APP, ROUTE, MODEL = "llm", "/llm/v1/chat/completions", "smollm2-135m-instruct"
HIDDEN = [{"role": "user", "content": "List two animals that live in the sea."}]
HIDDEN_MAX_TOKENS = 20
LONG = [{"role": "user", "content": "Write a long poem about mountains."}]

#: Runs in the learner's kernel (body of ``async def __grader_extra(out)``).
PROBE = f"""
import asyncio, inspect
fn = globals().get("stream_text")
if fn is None:
    out["stream_text"] = {{"error": "stream_text is not defined"}}
else:
    try:
        from ray import serve
        handle = serve.get_deployment_handle("LLMServer", app_name={APP!r})
        pieces = []
        async def collect():
            gen = fn(handle, {HIDDEN!r}, {HIDDEN_MAX_TOKENS})
            if inspect.iscoroutine(gen):  # not a generator (the stub): its own error shows first
                await gen
                raise TypeError("stream_text must be an async generator (async def + yield)")
            async for piece in gen:
                pieces.append(piece if isinstance(piece, str) else repr(piece))
        await asyncio.wait_for(collect(), 120)
        out["stream_text"] = {{"pieces": pieces, "asyncgen": inspect.isasyncgenfunction(fn)}}
        stats = serve.get_deployment_handle("LLMServer", app_name={APP!r}).get_stats
        before = (await stats.remote())["cancelled"]
        early = fn(handle, {LONG!r}, 128)
        await asyncio.wait_for(anext(early), 60)
        await early.aclose()
        await asyncio.sleep(1.5)
        out["stream_text"]["stopped"] = (await stats.remote())["cancelled"] - before
    except BaseException as exc:
        out["stream_text"] = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
"""


def check_app_running(live):
    app = live.app_status(APP)
    if app is None:
        return False, f"no application {APP!r} in serve.status()"
    if app.get("status") != "RUNNING":
        return False, f"application {APP!r} is {app.get('status')}, not RUNNING"
    import requests

    models = requests.get(live.url("/llm/v1/models"), timeout=30)
    try:
        ids = [m["id"] for m in models.json()["data"]]
    except (ValueError, KeyError, TypeError):
        return False, f"GET /llm/v1/models answered {models.status_code} {short(models.text)}"
    if ids != [MODEL]:
        return False, f"/v1/models lists {ids}, expected [{MODEL!r}]"
    return True, f"{APP!r} is RUNNING; /v1/models lists {MODEL!r}"


def check_chat_json(live):
    answer = live.post(ROUTE, {"model": MODEL, "messages": HIDDEN, "max_tokens": 12}, timeout=120)
    if answer.status_code != 200:
        return False, f"a chat request got HTTP {answer.status_code}: {short(answer.text)}"
    try:
        from openai.types.chat import ChatCompletion

        parsed = ChatCompletion.model_validate(answer.json())
    except Exception as exc:  # pydantic ValidationError or not JSON
        return False, f"the answer is not a ChatCompletion: {short(str(exc))}"
    if not parsed.choices[0].message.content or parsed.usage is None:
        return False, "the ChatCompletion has no content or no usage"
    return True, f"HTTP 200, a ChatCompletion with {parsed.usage.completion_tokens} completion tokens"


def check_chat_stream(live):
    import requests

    body = {"model": MODEL, "messages": HIDDEN, "max_tokens": 12, "stream": True}
    with requests.post(live.url(ROUTE), json=body, stream=True, timeout=120) as answer:
        lines = [line for line in answer.iter_lines(decode_unicode=True) if line]
        kind = answer.headers.get("content-type", "")
    if answer.status_code != 200 or not kind.startswith("text/event-stream"):
        return False, f"stream: true got HTTP {answer.status_code} with content-type {kind!r}"
    if not lines or lines[-1] != "data: [DONE]":
        return False, f"the event stream does not end with 'data: [DONE]': {lines[-2:]}"
    try:
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    except ValueError:
        return False, "an event is not `data: <JSON>`"
    if not chunks or {c.get("object") for c in chunks} != {"chat.completion.chunk"}:
        return False, "the events are not chat.completion.chunk objects"
    return True, f"{len(chunks)} chat.completion.chunk events, then data: [DONE]"


BAD = {
    "not JSON": (dict(raw="{not json"), 400),
    "wrong type": (dict(body={"model": MODEL, "messages": HIDDEN, "max_tokens": "12"}), 400),
    "max_tokens over the cap": (dict(body={"model": MODEL, "messages": HIDDEN, "max_tokens": 100_000}), 400),
    "prompt over the window": (
        dict(
            body={"model": MODEL, "messages": [{"role": "user", "content": "sea " * 4000}], "max_tokens": 8}
        ),
        400,
    ),
}


def check_limits_4xx(live):
    good = {"model": MODEL, "messages": HIDDEN, "max_tokens": 4}
    return live.bad_then_good(ROUTE, BAD, dict(body=good), error_at=("error", "message"), timeout=120)


def check_ex_stream_text(live):
    found = live.kernel.get("stream_text")
    if not isinstance(found, dict):
        return False, "could not call stream_text"
    if "error" in found:
        return False, f"stream_text(handle, messages, max_tokens) raised {short(str(found['error']), 200)}"
    pieces = found.get("pieces")
    if not found.get("asyncgen") or not isinstance(pieces, list):
        return False, "stream_text is not an async generator"
    answer = live.post(
        ROUTE, {"model": MODEL, "messages": HIDDEN, "max_tokens": HIDDEN_MAX_TOKENS}, timeout=120
    )
    expected = answer.json()["choices"][0]["message"]["content"]
    if "".join(str(p) for p in pieces) != expected:
        return (
            False,
            f"on a new prompt the pieces add up to {short(''.join(map(str, pieces)))!r}, not {expected!r}",
        )
    if len(pieces) < 2:
        return False, "the answer came as one piece: yield each token's text as it arrives"
    if found.get("stopped") != 1:
        return False, "closing stream_text's generator early did not stop the generation on the replica"
    return True, f"{len(pieces)} pieces that add up to the app's answer; closing early stops the replica"
