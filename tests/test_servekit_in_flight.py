"""servekit.InFlight: counts the handle calls a piece of code keeps in flight at once.

Fake handles stand in for Serve's (a response is an awaitable that finishes after a short sleep,
with ``.result()`` too), so the count is checked against concurrent and one-at-a-time code with no
cluster. The exercise checks of lessons 01 and 02 use it on real handles.
"""

from __future__ import annotations

import asyncio
import time

from servekit.in_flight import InFlight


class FakeResponse:
    def __init__(self, value):
        self.value = value

    def __await__(self):
        yield from asyncio.sleep(0.01).__await__()
        return self.value

    def result(self, timeout_s=None):
        time.sleep(0.01)
        return self.value


class FakeHandle:
    """handle.upper.remote(text), handle.exclaim.remote(text_or_response), as Serve's handle calls."""

    def __init__(self):
        self.args = []

    def __getattr__(self, name):
        handle = self

        class Method:
            def remote(self, value):
                handle.args.append(value)
                if isinstance(value, FakeResponse):  # Serve resolves a passed response first
                    value = value.value
                return FakeResponse(value.upper() if name == "upper" else value + "!")

        return Method()


TEXTS = ["a", "b", "c", "d"]


def test_all_started_then_awaited_counts_every_call_in_flight():
    spy = InFlight()
    handle = spy.wrap(FakeHandle())

    async def concurrent():
        return await asyncio.gather(*[handle.upper.remote(t) for t in TEXTS])

    assert asyncio.run(concurrent()) == ["A", "B", "C", "D"]
    assert (spy.most, spy.calls, spy.now, spy.chained) == (4, 4, 0, 0)


def test_one_at_a_time_counts_one():
    spy = InFlight()
    handle = spy.wrap(FakeHandle())

    async def sequential():
        return [await handle.upper.remote(t) for t in TEXTS]

    assert asyncio.run(sequential()) == ["A", "B", "C", "D"]
    assert (spy.most, spy.calls, spy.now) == (1, 4, 0)
    assert [handle.upper.remote(t).result() for t in TEXTS] == ["A", "B", "C", "D"]
    assert (spy.most, spy.calls, spy.now) == (1, 8, 0), ".result() finishes a call too"


def test_a_response_passed_on_is_chained_and_unwrapped_for_the_real_handle():
    spy = InFlight()
    real = FakeHandle()
    first, second = spy.wrap(real), spy.wrap(real)

    async def pipeline():
        uppers = [first.upper.remote(t) for t in TEXTS]
        exclaimed = [second.exclaim.remote(u) for u in uppers]
        return await asyncio.gather(*exclaimed), await asyncio.gather(*uppers)

    assert asyncio.run(pipeline()) == (["A!", "B!", "C!", "D!"], ["A", "B", "C", "D"])
    assert (spy.most, spy.calls, spy.now, spy.chained) == (8, 8, 0, 4)
    assert all(isinstance(a, FakeResponse) for a in real.args[4:]), "the real handle gets real responses"


def test_awaiting_stage_by_stage_is_concurrent_but_not_chained():
    spy = InFlight()
    handle = spy.wrap(FakeHandle())

    async def stages():
        uppers = await asyncio.gather(*[handle.upper.remote(t) for t in TEXTS])
        return await asyncio.gather(*[handle.exclaim.remote(u) for u in uppers])

    assert asyncio.run(stages()) == ["A!", "B!", "C!", "D!"]
    assert (spy.most, spy.chained) == (4, 0)


def test_options_keep_counting():
    spy = InFlight()

    class WithOptions(FakeHandle):
        def options(self, **kwargs):
            return self

    handle = spy.wrap(WithOptions())
    assert handle.options(multiplexed_model_id="1").upper.remote("x").result() == "X"
    assert (spy.calls, spy.now) == (1, 0)
