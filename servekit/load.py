"""A small load generator: N requests at a fixed concurrency, with latency percentiles and a plot.

``run_load`` drives any blocking callable from a thread pool (HTTP with ``requests``);
``run_load_async`` drives a coroutine function from the running event loop (deployment
handles in a notebook cell: ``report = await run_load_async(...)``). Both return a
:class:`LoadReport`. A request counts as an error when it raises or returns an HTTP
status >= 400 (an ``int`` status or an object with ``status_code``).

On the machine that serves, the client shares the CPU with the server: for HTTP load
beyond a few dozen requests/s, await ``run_load_async`` with an ``aiohttp`` session
(``send`` returns ``response.status``). Measured on 2 cores: an httpx client kept half a
core busy where aiohttp used a twentieth (while lesson 05 was written, which no longer runs
httpx), and 32 client threads capped a uvicorn no-op at ~790 req/s where one aiohttp
session reached ~4,900 (lesson 06).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests
from tqdm.auto import tqdm


@dataclass
class LoadReport:
    """What a load run measured. Times are in seconds."""

    concurrency: int
    duration_s: float
    started_s: list[float] = field(default_factory=list)  # when each request started, from t=0
    indices: list[int] = field(default_factory=list)  # which request (the i passed to send) each row is
    latencies_s: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # HTTP status, "ok", or exception class name
    errors: int = 0

    @property
    def total(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        """Completed requests per second over the whole run."""
        return self.total / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else float("nan")

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def summary(self) -> dict[str, Any]:
        """Rounded numbers, ready to print or put in a table."""
        return {
            "requests": self.total,
            "concurrency": self.concurrency,
            "errors": self.errors,
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.p50_ms, 1),
            "p95_ms": round(self.p95_ms, 1),
            "p99_ms": round(self.p99_ms, 1),
            "duration_s": round(self.duration_s, 2),
        }

    def plot(self, title: str = "Latency", ax=None):
        """Latency of every request over time (left) and its distribution with p50/p95/p99 (right)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
        else:
            fig = ax[0].figure
        ms = np.asarray(self.latencies_s) * 1000
        ax[0].scatter(self.started_s, ms, s=6, alpha=0.6)
        ax[0].set(
            xlabel="request start (s)", ylabel="latency (ms)", title=f"{title}: {self.throughput:.1f} req/s"
        )
        ax[1].hist(ms, bins=40, color="tab:gray")
        for q, color in ((50, "tab:green"), (95, "tab:orange"), (99, "tab:red")):
            v = self.percentile_ms(q)
            ax[1].axvline(v, color=color, label=f"p{q} {v:.0f} ms")
        ax[1].set(
            xlabel="latency (ms)", ylabel="requests", title=f"{self.total} requests, {self.errors} errors"
        )
        ax[1].legend()
        fig.tight_layout()
        return fig


def _outcome(result: Any) -> tuple[Any, bool]:
    if isinstance(result, int) and not isinstance(result, bool):
        return result, result >= 400
    status = getattr(result, "status_code", None)
    if isinstance(status, int):
        return status, status >= 400
    return "ok", False


def run_load(
    send: Callable[[int], Any],
    total: int,
    concurrency: int,
    progress: bool = True,
    desc: str = "requests",
    budget_s: float | None = None,
) -> LoadReport:
    """Call ``send(i)`` for i in range(total) from ``concurrency`` threads, timing each call.

    With ``budget_s``, no call starts after that many seconds: a slow service is measured on fewer
    requests, not for longer (``total`` then counts the calls that ran)."""
    if total < 1 or concurrency < 1:
        raise ValueError("total and concurrency must be >= 1")
    if budget_s is not None and budget_s <= 0:
        raise ValueError("budget_s must be > 0")
    lock = threading.Lock()
    report = LoadReport(concurrency=concurrency, duration_s=0.0)
    bar = tqdm(total=total, desc=desc, disable=not progress)
    t0 = time.perf_counter()

    def one(i: int) -> None:
        start = time.perf_counter()
        if budget_s is not None and start - t0 > budget_s:
            return
        try:
            outcome, failed = _outcome(send(i))
        except Exception as exc:  # an error is a result here, not a crash of the run
            outcome, failed = type(exc).__name__, True
        end = time.perf_counter()
        with lock:
            report.started_s.append(start - t0)
            report.indices.append(i)
            report.latencies_s.append(end - start)
            report.outcomes[outcome] += 1
            report.errors += failed
            bar.update()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(total)))
    report.duration_s = time.perf_counter() - t0
    bar.close()
    return report


async def run_load_async(
    send: Callable[[int], Awaitable[Any]],
    total: int,
    concurrency: int,
    progress: bool = True,
    desc: str = "requests",
    stop: Callable[[], bool] | None = None,
) -> LoadReport:
    """Await ``send(i)`` for i in range(total) with at most ``concurrency`` in flight.

    ``stop``, if given, is asked before each new request: once it returns True no more
    requests start (those in flight finish), so a run can last "until something happened"
    with ``total`` as the cap.
    """
    if total < 1 or concurrency < 1:
        raise ValueError("total and concurrency must be >= 1")
    report = LoadReport(concurrency=concurrency, duration_s=0.0)
    bar = tqdm(total=total, desc=desc, disable=not progress)
    queue = iter(range(total))
    t0 = time.perf_counter()

    async def worker() -> None:
        for i in queue:  # workers share one iterator, so each index is sent once
            if stop is not None and stop():
                break
            start = time.perf_counter()
            try:
                outcome, failed = _outcome(await send(i))
            except Exception as exc:
                outcome, failed = type(exc).__name__, True
            report.started_s.append(start - t0)
            report.indices.append(i)
            report.latencies_s.append(time.perf_counter() - start)
            report.outcomes[outcome] += 1
            report.errors += failed
            bar.update()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    report.duration_s = time.perf_counter() - t0
    bar.close()
    return report


def http_json_sender(
    url: str, payload: Callable[[int], Any] | Any, timeout_s: float = 60.0
) -> Callable[[int], int]:
    """A ``send`` for :func:`run_load` that POSTs JSON (``payload(i)`` or a fixed payload) and
    returns the HTTP status. Each thread keeps its own keep-alive session."""
    local = threading.local()

    def send(i: int) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body = payload(i) if callable(payload) else payload
        return session.post(url, json=body, timeout=timeout_s).status_code

    return send


@contextlib.asynccontextmanager
async def aiohttp_json_sender(
    url: str,
    payload: Callable[[int], Any] | Any,
    params: dict[str, str] | None = None,
    limit: int = 64,
    timeout_s: float = 120.0,
    on_json: Callable[[int, Any], None] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Callable[[int], Awaitable[int]]]:
    """A ``send`` for :func:`run_load_async` that POSTs JSON with one ``aiohttp`` session and
    returns the HTTP status; the session (at most ``limit`` connections) closes with the block::

        async with servekit.aiohttp_json_sender(url, lambda i: {"text": texts[i % 4]}) as send:
            report = await servekit.run_load_async(send, total=200, concurrency=32)

    ``on_json(i, body)``, if given, gets each answer's decoded JSON body (``None`` if the body
    is not JSON), e.g. to record which model version answered request ``i``. ``headers`` go with
    every request (e.g. an API key).
    """
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def send(i: int) -> int:
            body = payload(i) if callable(payload) else payload
            async with session.post(url, params=params, json=body) as response:
                raw = await response.read()
                if on_json is not None:
                    try:
                        answer = json.loads(raw)
                    except ValueError:
                        answer = None
                    on_json(i, answer)
                return response.status

        yield send
