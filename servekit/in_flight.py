"""Count how many deployment-handle calls a piece of code keeps in flight at once.

The exercise checks of lessons 01 and 02 ask for concurrent handle calls: start them all, then
await. The answers of a concurrent and of a one-at-a-time solution are the same, so a check cannot
tell them apart from the answers; it hands the exercise wrapped handles instead and reads how many
calls were started and not yet finished at the same time. Nothing is mocked: every call goes to the
real handle and returns the real answer.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


class InFlight:
    """Wraps handles with ``wrap``; ``most`` is the largest number of calls in flight at one time.

    A call is in flight from ``.remote(...)`` until it has been awaited (or ``.result()`` returned).
    ``chained`` counts the calls that were given another call's response as an argument (Serve
    passes the result on without the caller waiting for it).
    """

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.calls = 0
        self.chained = 0

    def wrap(self, handle: Any) -> _Handle:
        return _Handle(self, handle)

    def _start(self) -> None:
        self.calls += 1
        self.now += 1
        self.most = max(self.most, self.now)

    def _finish(self) -> None:
        self.now -= 1


class _Handle:
    def __init__(self, counter: InFlight, handle: Any) -> None:
        self._counter = counter
        self._handle = handle

    def options(self, *args: Any, **kwargs: Any) -> _Handle:
        return _Handle(self._counter, self._handle.options(*args, **kwargs))

    def remote(self, *args: Any, **kwargs: Any) -> _Response:
        inner = [_unwrap(a) for a in args]
        inner_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        if any(isinstance(a, _Response) for a in [*args, *kwargs.values()]):
            self._counter.chained += 1
        response = self._handle.remote(*inner, **inner_kwargs)
        self._counter._start()
        return _Response(self._counter, response)

    def __getattr__(self, name: str) -> _Handle:  # handle.method, as on a DeploymentHandle
        if name.startswith("_"):
            raise AttributeError(name)
        return _Handle(self._counter, getattr(self._handle, name))


class _Response:
    def __init__(self, counter: InFlight, response: Any) -> None:
        self._counter = counter
        self._response = response
        self._done = False

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._counter._finish()

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self._response.__await__())
        finally:
            self._finish()

    def result(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._response.result(*args, **kwargs)
        finally:
            self._finish()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._response, name)


def _unwrap(value: Any) -> Any:
    return value._response if isinstance(value, _Response) else value
