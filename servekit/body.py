"""A request body read with a size limit, then parsed as JSON: the capstone references' first check.

Neither Serve's proxy nor uvicorn limits a body's size (lesson 06), and Starlette's
``await request.json()`` reads all of it. :func:`json_body` stops reading past ``max_bytes``
(at once when the declared ``Content-Length`` is larger) and turns every unparsable body into a
:class:`BadBody` with the status to answer: 413 too large, 400 not JSON.
"""

from __future__ import annotations

import json
from typing import Any


class BadBody(ValueError):
    """The body cannot be used; ``status`` is the HTTP status to answer (400 or 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def json_body(request, max_bytes: int) -> Any:
    """The JSON value of a Starlette ``request``'s body, read at most ``max_bytes`` bytes of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadBody(413, f"the body has {int(declared)} bytes; the limit is {max_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadBody(413, f"the body has more than {max_bytes} bytes; the limit is {max_bytes}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a number of 5,000 digits, too deep
        raise BadBody(400, "the body is not JSON") from None
