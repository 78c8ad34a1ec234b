"""servekit.rollout without Ray: wait_for_async's contract (deploy_config and replica_ids need a
cluster; lesson 08 and tests/test_fuzz_lesson08.py exercise them live)."""

from __future__ import annotations

import asyncio

import pytest

from servekit import WaitTimeout, wait_for_async


def test_returns_the_first_truthy_value():
    seen = []

    async def predicate():
        seen.append(len(seen))
        return len(seen) >= 3 and "ready"

    assert asyncio.run(wait_for_async(predicate, 5, "three calls", poll_s=0.01)) == "ready"
    assert seen == [0, 1, 2]


def test_times_out_naming_what_and_the_last_value():
    async def never():
        return 0

    with pytest.raises(WaitTimeout, match=r"the thing: not within 0.05 s \(last seen: 0\)"):
        asyncio.run(wait_for_async(never, 0.05, "the thing", poll_s=0.01))


def test_rejects_non_positive_times():
    async def anything():
        return True

    with pytest.raises(ValueError):
        asyncio.run(wait_for_async(anything, 0, "x"))
