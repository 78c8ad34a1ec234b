"""Send a table of bad requests to an HTTP app and show what each one got back."""

from __future__ import annotations

from typing import Any

import requests


def _first_problem(detail: list[Any]) -> str:
    """FastAPI's 422 ``detail`` list, shortened to its first problem: ``msg (where)``, ``+N more``."""
    first = detail[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (+{len(detail) - 1} more)" if len(detail) > 1 else ""
    return f"{first['msg']}" + (f" ({where})" if where else "") + more


def error_text(response: requests.Response, width: int = 80) -> str:
    """The message of an error answer: the course's ``{"error": ...}``, FastAPI's ``detail``, or the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:width]
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"])[:width]
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and "msg" in detail[0]:
            return _first_problem(detail)[:width]
        if "detail" in body:
            return str(detail)[:width]
    return str(body)[:width]


def probe(
    url: str, cases: dict[str, dict[str, Any]], show: bool = True, timeout_s: float = 30.0
) -> dict[str, requests.Response]:
    """POST each case's keyword arguments (``json=``, ``data=``, ``headers=`` ...) to ``url``.

    Returns the responses by case name; with ``show``, prints one line per case: name, status,
    and the error message the app gave.
    """
    answers = {}
    width = max((len(case) for case in cases), default=0)
    for case, kwargs in cases.items():
        answers[case] = response = requests.post(url, timeout=timeout_s, **kwargs)
        if show:
            print(f"{case:<{width}}  {response.status_code}  {error_text(response)}")
    return answers
