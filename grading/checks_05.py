"""Hidden checks of lesson 05 (dynamic batching) as an assignment; points in rubric_05.json.

Run by servekit/grade.py against the live ``batching`` app just before the lesson's last cell
(its cleanup). The exercise (``pick_config``) is called in the kernel on sweeps the learner never
saw and compared with the answer computed here. Each check returns ``(passed, reason)``;
``live.kernel`` is untrusted.
"""

from __future__ import annotations

APP, ROUTE = "batching", "/batching"
HIDDEN_ROWS = [
    {"max_batch_size": 8, "batch_wait_timeout_s": 0.005, "throughput": 50.0, "p95_ms": 300.0},
    {"max_batch_size": 16, "batch_wait_timeout_s": 0.01, "throughput": 80.0, "p95_ms": 700.0},
    {"max_batch_size": 32, "batch_wait_timeout_s": 0.05, "throughput": 120.0, "p95_ms": 1400.0},
    {"max_batch_size": 64, "batch_wait_timeout_s": 0.02, "throughput": 118.0, "p95_ms": 900.0},
]
HIDDEN_BUDGETS = [1000.0, 200.0, 1400.0, 5000.0, 700.0]

#: Runs in the learner's kernel (body of ``async def __grader_extra(out)``).
PROBE = f"""
fn = globals().get("pick_config")
rows = {HIDDEN_ROWS!r}
answers = []
for budget in {HIDDEN_BUDGETS!r}:
    try:
        answers.append({{"value": fn([dict(r) for r in rows], budget)}})
    except BaseException as exc:
        answers.append({{"error": f"{{type(exc).__name__}}: {{exc}}"}})
out["pick_config"] = answers if fn is not None else None
"""


def expected(budget: float) -> dict | None:
    within = [r for r in HIDDEN_ROWS if r["p95_ms"] <= budget]
    return max(within, key=lambda r: r["throughput"]) if within else None


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else text[:n] + "..."


def check_app_running(live):
    app = live.app_status(APP)
    if app is None:
        return False, f"no application {APP!r} in serve.status()"
    if app.get("status") != "RUNNING":
        return False, f"application {APP!r} is {app.get('status')}, not RUNNING"
    return True, f"{APP!r} is RUNNING"


def check_batched_answers(live):
    one = live.post(ROUTE, {"text": "What a wonderful day, I love it!"})
    batched = live.post(ROUTE, {"text": "What a wonderful day, I love it!"}, params={"mode": "batched"})
    for name, answer in (("unbatched", one), ("batched", batched)):
        if answer.status_code != 200:
            return False, f"{name}: HTTP {answer.status_code} {_short(answer.text)}"
        if set(answer.json()) != {"label", "score", "scores"}:
            return False, f"{name}: the answer is not {{label, score, scores}}: {_short(answer.text)}"
    if one.json()["label"] != batched.json()["label"]:
        return False, f"batching changed the answer: {one.json()['label']} vs {batched.json()['label']}"
    return True, f"batched and unbatched agree: {_short(batched.text)}"


def check_bad_input_4xx(live):
    cases = {
        "not JSON": (dict(raw="text=hi"), 400),
        "missing field": (dict(body={"txt": "x"}), 422),
        "bad mode": (dict(body={"text": "fine"}, params={"mode": "fast"}), 422),
    }
    for case, (kwargs, want) in cases.items():
        answer = live.post(ROUTE, **kwargs)
        if answer.status_code != want:
            return False, f"{case}: HTTP {answer.status_code} {_short(answer.text)}, expected {want}"
    if live.post(ROUTE, {"text": "still there?"}).status_code != 200:
        return False, "after the bad requests a good one failed"
    return True, "400 / 422 / 422 as documented; the app kept serving"


def check_ex_pick_config(live):
    answers = live.kernel.get("pick_config")
    if not isinstance(answers, list) or len(answers) != len(HIDDEN_BUDGETS):
        return (
            False,
            "pick_config is not defined" if answers is None else f"no answers from pick_config: {answers!r}",
        )
    for budget, answer in zip(HIDDEN_BUDGETS, answers, strict=True):
        want = expected(budget)
        if not isinstance(answer, dict) or "error" in answer:
            return False, f"pick_config(sweep, {budget:g}) raised {_short(str(answer.get('error')), 200)}"
        if answer.get("value") != want:
            return (
                False,
                f"pick_config(sweep, {budget:g}) returned {_short(str(answer.get('value')))}, want {want}",
            )
    return (
        True,
        f"right on {len(HIDDEN_BUDGETS)} budgets the learner never saw (including none within budget)",
    )
