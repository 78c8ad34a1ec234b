"""A client-side retry for idempotent requests: a few tries, exponential backoff with full jitter.

Serve retries a request by itself only while no replica has accepted it yet; a request that is
running on a replica when the replica (or its node) dies fails, and only the client can send it
again. Retrying is safe only for idempotent requests (a prediction is: sending it twice changes
nothing); what to retry is a status meaning "try again" (500 from a dead replica, 502/503/504,
408 a timeout, 429 too many requests) or a connection error, never a 4xx about the request itself.

Usage with the kit's load generator (a ``send`` returns the HTTP status)::

    retried = with_retries(send, tries=3)
    report = await servekit.run_load_async(retried, total=200, concurrency=8)
    print(retried.retries)   # how many extra tries it took
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _connection_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
    try:
        import aiohttp

        errors += (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
    except ImportError:  # pragma: no cover - aiohttp comes with ray[serve]
        pass
    return errors


class RetryingSender:
    """An async ``send(i) -> status`` retried up to ``tries`` times in all on a retryable status
    (``statuses``) or a connection error, sleeping a jittered ``base_s * 2**attempt`` (at most
    ``cap_s``) in between; ``seed`` makes the jitter reproducible. ``retries`` counts the extra tries.
    """

    def __init__(
        self,
        send: Callable[[int], Awaitable[int]],
        tries: int = 3,
        base_s: float = 0.1,
        cap_s: float = 2.0,
        statuses: frozenset[int] = RETRY_STATUSES,
        seed: int | None = None,
    ):
        if tries < 1:
            raise ValueError("tries must be >= 1")
        self.send, self.tries, self.base_s, self.cap_s, self.statuses = send, tries, base_s, cap_s, statuses
        self.rng = random.Random(seed)
        self.errors = _connection_errors()
        self.retries = 0  # extra tries sent, over all requests

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)], so that clients that failed
        together do not all come back at the same moment."""
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))

    async def __call__(self, i: int) -> int:
        for attempt in range(self.tries):
            last = attempt == self.tries - 1
            try:
                status = await self.send(i)
            except self.errors:  # connection refused/reset/closed, client timeout
                if last:
                    raise
            else:
                if status not in self.statuses or last:
                    return status
            self.retries += 1
            await asyncio.sleep(self.backoff_s(attempt))
        raise AssertionError("unreachable")  # pragma: no cover


#: The name a call site reads best: ``with_retries(send, tries=3)`` builds a :class:`RetryingSender`.
with_retries = RetryingSender
