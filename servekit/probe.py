"""Send a table of bad requests to an HTTP app and show what each one got back."""

from __future__ import annotations

from typing import Any

import requests


def error_text(response: requests.Response, width: int = 80) -> str:
    """The message of an error answer: the course's ``{"error": ...}``, FastAPI's ``detail``, or the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:width]
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if key in body:
                return str(body[key])[:width]
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
