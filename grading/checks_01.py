"""Hidden checks of lesson 01 (first deployment) as an assignment; points in rubric_01.json.

Run by servekit/grade.py against the live ``sentiment`` app at the lesson's "Cleanup" section.
Exercise 1 (``classify_many``) is called in the kernel on texts the learner never saw, and its
counts are compared with the labels the grader gets over HTTP; exercise 2 (the tweet-sized
service) is checked over HTTP and through the CPUs Ray has left. Each check returns
``(passed, reason)``; ``live.kernel`` is untrusted.
"""

from __future__ import annotations

from servekit.grader.rubric import short

APP, ROUTE = "sentiment", "/sentiment"
HIDDEN_TEXTS = [
    "This is the best pizza I have had in years!",
    "My package arrived broken and support never answered.",
    "The train leaves at 7:15 from platform 4.",
    "Absolutely loved the concert, what a night",
    "I want a refund, this app keeps crashing.",
    "The library is closed on public holidays.",
]

#: Runs in the learner's kernel (body of ``async def __grader_extra(out)``).
PROBE = f"""
import asyncio, inspect
fn = globals().get("classify_many")
if fn is None:
    out["classify_many"] = {{"error": "classify_many is not defined"}}
else:
    try:
        from ray import serve
        result = fn(serve.get_app_handle({APP!r}), {HIDDEN_TEXTS!r})
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, 60)
        out["classify_many"] = {{"value": result if isinstance(result, dict) else repr(result)}}
    except BaseException as exc:
        out["classify_many"] = {{"error": f"{{type(exc).__name__}}: {{exc}}"}}
import ray
out["available_cpu"] = ray.available_resources().get("CPU") if ray.is_initialized() else None
"""


def _replicas(live) -> dict:
    app = live.app_status(APP) or {}
    return (app.get("deployments") or {}).get("SentimentAnalyzer", {}).get("replica_states") or {}


def check_app_running(live):
    app = live.app_status(APP)
    if app is None:
        return False, f"no application {APP!r} in serve.status()"
    if app.get("status") != "RUNNING":
        return False, f"application {APP!r} is {app.get('status')}, not RUNNING"
    answer = live.post(ROUTE, {"text": "fine"})
    if answer.status_code == 404:
        return False, f"{APP!r} is RUNNING but {live.url(ROUTE)} answers 404"
    return True, f"{APP!r} is RUNNING and answers at {ROUTE} (HTTP {answer.status_code})"


def check_answers_good_input(live):
    answer = live.post(ROUTE, {"text": "I love this course, it is wonderful!"})
    if answer.status_code != 200:
        return False, f"a clear positive sentence got HTTP {answer.status_code}: {short(answer.text)}"
    body = answer.json()
    if not isinstance(body, dict) or set(body) != {"label", "score", "scores"}:
        return False, f"the answer is not {{label, score, scores}}: {short(answer.text)}"
    if body["label"] != "positive":
        return False, f"a clear positive sentence got label {body['label']!r}"
    return True, f"HTTP 200 {short(answer.text)}"


BAD = {
    "not JSON": (dict(raw="text=hello"), 400),
    "missing field": (dict(body={"txt": "hello"}), 422),
    "wrong type": (dict(body={"text": 42}), 422),
    "empty text": (dict(body={"text": "  "}), 422),
}


def check_bad_input_4xx(live):
    return live.bad_then_good(ROUTE, BAD, dict(body={"text": "Still working?"}), error_at=("error",))


def check_ex1_classify_many(live):
    found = live.kernel.get("classify_many")
    if not isinstance(found, dict):
        return False, f"could not call classify_many ({live.kernel.get('probe_missing', 'no result')})"
    if "error" in found:
        return False, f"classify_many(handle, texts) raised {short(str(found['error']), 200)}"
    value = found.get("value")
    if not isinstance(value, dict):
        return False, f"classify_many returned {short(str(value))}, not a dict of label -> count"
    expected: dict[str, int] = {}
    for text in HIDDEN_TEXTS:
        label = live.post(ROUTE, {"text": text}).json()["label"]
        expected[label] = expected.get(label, 0) + 1
    counts = {k: v for k, v in value.items() if v}
    if counts != expected:
        return (
            False,
            f"on {len(HIDDEN_TEXTS)} new texts classify_many counted {value}, the app says {expected}",
        )
    return True, f"on {len(HIDDEN_TEXTS)} new texts: {value}, as the app answers them one by one"


def check_ex2_tweet_limit(live):
    long = live.post(ROUTE, {"text": "a" * 281})
    try:
        error = long.json().get("error", "")
    except (ValueError, AttributeError):
        error = ""
    if long.status_code != 413 or not str(error).endswith("the limit is 280"):
        return (
            False,
            f"281 characters got HTTP {long.status_code} {short(long.text)}, expected 413 (limit 280)",
        )
    fits = live.post(ROUTE, {"text": "a" * 280})
    if fits.status_code != 200:
        return False, f"280 characters got HTTP {fits.status_code}, expected 200"
    return True, "281 characters -> 413 with 'the limit is 280'; 280 -> 200"


def check_ex2_half_cpu(live):
    replicas = _replicas(live)
    cpu = live.kernel.get("available_cpu")
    if replicas != {"RUNNING": 1}:
        return False, f"SentimentAnalyzer replicas {replicas}, expected one RUNNING"
    if not isinstance(cpu, int | float) or abs(cpu - 1.5) > 1e-6:
        return False, f"{cpu} of 2 CPUs free: the replica should reserve 0.5 (1.5 free)"
    return True, "one replica reserving half a CPU (1.5 of 2 free)"
