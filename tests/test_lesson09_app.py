"""Lesson 09's service (course_apps/sentiment_service.py) without Ray: the input rules and wordings."""

from __future__ import annotations

import json

import pytest
from course_errors import BAD_BODIES

from course_apps.sentiment_service import MAX_BODY_BYTES, MAX_CHARS, validate


def answer(body: bytes) -> tuple[int, str] | str:
    text, problem = validate(body)
    return text if problem is None else (problem.status_code, json.loads(problem.body)["error"])


def test_a_good_body_gives_its_text():
    assert answer(b'{"text": "I love this course!"}') == "I love this course!"
    assert answer(b'{"text": "hi", "extra": 1}') == "hi"


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_bodies_get_the_course_4xx(body, status, message):
    assert answer(body) == (status, message)


def test_size_limits():
    long_text = json.dumps({"text": "a" * (MAX_CHARS + 1)}).encode()
    assert answer(long_text) == (413, f"'text' has {MAX_CHARS + 1} characters; the limit is {MAX_CHARS}")
    huge = b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}'
    assert answer(huge)[0] == 413
