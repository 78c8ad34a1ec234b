"""The course's answers to bad request bodies: one table for the tests of every ``{"text": ...}`` app.

The wordings are the course's convention (issue 12): 400 when the body is not JSON (or not JSON this
service can parse), 422 when the JSON lacks a usable ``text``. Each test adds its app's size limits.
"""

from __future__ import annotations

SHAPE = 'the body must be JSON like {"text": "..."}'

#: (body, status, error message) for bodies every app must refuse the same way, below any size limit.
BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"{oops", 400, SHAPE),
    (b"text=hello", 400, SHAPE),
    (b"", 400, SHAPE),
    (b"\xff\xfe", 400, SHAPE),
    (b"[" * 50_000, 400, SHAPE),  # nested deeper than the JSON parser goes (under lesson 09's 64 KiB)
    (b'{"text": ' + b"7" * 5000 + b"}", 400, SHAPE),  # an integer longer than Python parses
    (b'{"txt": "hello"}', 422, "missing field 'text'"),
    (b'["hello"]', 422, "missing field 'text'"),
    (b'{"text": 42}', 422, "'text' must be a string, not int"),
    (b'{"text": null}', 422, "'text' must be a string, not NoneType"),
    (b'{"text": ["a", "b"]}', 422, "'text' must be a string, not list"),
    (b'{"text": "   "}', 422, "'text' is empty"),
    (b'{"text": "caf\\ud800"}', 422, "'text' is not valid Unicode (it has a lone surrogate)"),
]
