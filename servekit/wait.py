"""Poll until something is true, with a deadline and a message that says what did not happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """``wait_for`` ran past its deadline; the message names what was awaited and the last value seen."""


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.25) -> T:
    """Call ``predicate()`` every ``poll_s`` seconds until it returns something truthy; return that.

    Raises :class:`WaitTimeout` after ``timeout_s`` seconds, naming ``what`` and the last value
    ``predicate`` returned, so a notebook cell fails with a reason instead of hanging.
    """
    if timeout_s <= 0 or poll_s <= 0:
        raise ValueError("timeout_s and poll_s must be > 0")
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout_s:g} s (last seen: {value!r})")
        time.sleep(poll_s)
