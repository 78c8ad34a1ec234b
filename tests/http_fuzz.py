"""Property-based HTTP fuzzing of the course's apps: no request body may get a 5xx.

Used by tests/test_fuzz_lessons.py; a lesson's test needs three calls::

    from http_fuzz import fuzz_http_app     # tests/ is on sys.path for the test files in it
    report = fuzz_http_app(url, good={"text": "I love this course!"})   # raises on the first 5xx
    print(report)                                                        # examples run, time, statuses

``fuzz_http_app`` POSTs generated bodies (see :func:`bodies`) with hypothesis, checks each answer
with :func:`check_answer`, and finally checks that ``good`` still gets a 200: the app kept serving.
Runs are reproducible (``derandomize=True``, no example database), so a CI failure replays locally.

The bodies cover what a probe of malformed and extreme input sends: arbitrary JSON values (strings
with lone surrogates such as ``"\\ud800"`` written as JSON escapes, control characters, NaN,
integers with thousands of digits, deep nesting), the app's own schema with each field replaced by
any of those, invalid UTF-8, arbitrary bytes, an empty body and odd content types.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

#: The course's fuzz settings: reproducible (derandomized, no example database), no per-example
#: deadline (a model answers in tens of ms, a 64 KiB body in more), every health check off. A test
#: sets only its budget: ``@settings(FUZZ, max_examples=150)``.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)

CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
)

# Any code point, plus extra weight on the ones that break text pipelines: lone surrogates
# (valid as JSON escapes, not encodable as UTF-8), control characters, invisible and odd spaces.
CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.characters(categories=["Cc"]),
    st.sampled_from("\u200b\ufeff\u2028\u00a0\x00^$@*#<>[]{}\\"),
)
TEXTS = st.one_of(
    st.text(CHARS, max_size=40),
    st.text(st.sampled_from("ab .!?\n"), max_size=3000),  # long, sentence-like, mostly valid
    st.builds(lambda word, n: word * n, st.sampled_from(["good ", "x", ". ", "🙂"]), st.integers(0, 7000)),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXTS,
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, lists and objects nested a few levels."""
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXTS, inner, max_size=4)),
        max_leaves=max_leaves,
    )


def _around(value: Any) -> st.SearchStrategy[Any]:
    """A good field value with odd characters around it (strings) or any value of its kind."""
    if isinstance(value, str):
        odd = st.text(st.one_of(st.characters(), st.characters(categories=["Cc"])), max_size=12)
        return st.builds(lambda pre, post: pre + value + post, odd, odd)
    if isinstance(value, int) and not isinstance(value, bool):
        near = st.integers(value - 3, value + 5)
        return st.one_of(near, near, st.integers(-(2**70), 2**70), st.floats(), st.booleans())
    return json_values(4)


def like(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The app's own request shape, each field kept, changed around its good value, or replaced by
    any JSON value, sometimes a field dropped or an extra one added: most of these bodies get past
    "is it JSON" into the app's own logic and models."""
    fields = {
        name: st.one_of(st.just(value), _around(value), _around(value), st.one_of(TEXTS, json_values()))
        for name, value in good.items()
    }
    everything = frozenset(good)
    return st.builds(
        lambda chosen, keep, extra: {k: v for k, v in chosen.items() if k in keep} | extra,
        st.fixed_dictionaries(fields),
        st.one_of(st.just(everything), st.just(everything), st.frozensets(st.sampled_from(sorted(good)))),
        st.one_of(st.just({}), st.just({}), st.dictionaries(TEXTS, json_values(4), max_size=2)),
    )


def _dumps(value: Any) -> bytes:
    # ensure_ascii writes every non-ASCII character, lone surrogates included, as a \\uXXXX escape
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")


def _raw_bodies() -> st.SearchStrategy[bytes]:
    deep = st.builds(
        lambda n, o, c: (o * n + c * n).encode(),
        st.integers(1, 100_000),
        *(st.sampled_from(p) for p in (["[", '{"a":'], ["]", "}"])),
    )
    return st.one_of(
        st.just(b""),
        st.binary(max_size=200),
        deep,  # nesting deeper than Python's recursion limit
        st.builds(lambda n: b'{"text": ' + b"7" * n + b"}", st.integers(1, 20_000)),  # huge integers
        st.builds(lambda b: b'{"text": "' + b + b'"}', st.binary(min_size=1, max_size=50)),  # bad UTF-8
        st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(CHARS, max_size=60)),
        st.sampled_from([b"NaN", b"-Infinity", b'"\\ud800"', b'{"text": "\\udfff"}', b"{'text': 'x'}"]),
    )


def bodies(good: dict[str, Any]) -> st.SearchStrategy[tuple[bytes, str]]:
    """(body bytes, Content-Type) pairs: JSON in the app's shape, any JSON value, raw bytes."""
    # a good body whose strings have odd characters around them: reaches the models most often
    near = st.fixed_dictionaries(
        {k: _around(v) if isinstance(v, str) else st.just(v) for k, v in good.items()}
    ).map(_dumps)
    shaped = like(good).map(_dumps)
    mix = [near] * 4 + [shaped] * 3 + [json_values().map(_dumps)] + [_raw_bodies()] * 2
    body = st.sampled_from(mix).flatmap(lambda strategy: strategy)
    return st.tuples(body, st.sampled_from(CONTENT_TYPES))


# Bodies that once got a 500 from a lesson's app: always sent first, before the generated ones.
REGRESSIONS: tuple[tuple[bytes, str], ...] = (
    (b'{"text": "\\ud800"}', "application/json"),  # lone surrogate: valid JSON, not encodable as UTF-8
    (b'{"text": "' + b"a" * 20 + b'\\udfff."}', "application/json"),
    (b'{"text": ' + b"7" * 4301 + b"}", "application/json"),  # json.loads: ValueError, int over 4300 digits
    (b"[" * 100_000, "application/json"),  # json.loads: RecursionError
    (b"", ""),
)


def check_answer(response: requests.Response, message_keys: tuple[str, ...] = ("error",)) -> None:
    """The course's rule for any request: no 5xx, and a 4xx carries a JSON message under one of
    ``message_keys`` (``error`` for the course's apps, ``detail`` for FastAPI's)."""
    sent = response.request.body or b""
    where = f"{response.request.method} {response.url} body={sent[:300]!r}"
    assert response.status_code < 500, f"{response.status_code} for {where}: {response.text[:300]}"
    if response.status_code >= 400:
        try:
            answer = response.json()
        except ValueError:
            raise AssertionError(f"{response.status_code} without a JSON body for {where}") from None
        assert isinstance(answer, dict) and any(answer.get(k) for k in message_keys), (
            f"{response.status_code} without a message under {message_keys} for {where}: {answer!r}"
        )


@dataclass
class FuzzReport:
    examples: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return f"{self.examples} bodies in {self.seconds:.1f} s ({by_status})"


def fuzz_http_app(
    url: str,
    good: dict[str, Any],
    max_examples: int = 200,
    message_keys: tuple[str, ...] = ("error",),
    timeout_s: float = 60.0,
) -> FuzzReport:
    """POST ``max_examples`` generated bodies to ``url``; fail on the first bad answer (hypothesis
    then shrinks it to a minimal body), then check that ``good`` still gets a 200."""
    report = FuzzReport()
    session = requests.Session()
    start = time.monotonic()

    @settings(FUZZ, max_examples=max_examples)
    @given(bodies(good))
    def one_body(case: tuple[bytes, str]) -> None:
        body, content_type = case
        headers = {"Content-Type": content_type} if content_type else {}
        response = session.post(url, data=body, headers=headers, timeout=timeout_s)
        report.examples += 1
        report.statuses[response.status_code] += 1
        check_answer(response, message_keys)

    for case in reversed(REGRESSIONS):
        one_body = example(case)(one_body)
    try:
        one_body()
        after = session.post(url, json=good, timeout=timeout_s)
        assert after.status_code == 200, f"the app stopped serving: {after.status_code} {after.text[:300]}"
    finally:
        session.close()
        report.seconds = time.monotonic() - start
    return report
