"""servekit.retry: the client-side retry lesson 09's fault drills use, without any server."""

import asyncio

import pytest

from servekit.retry import RETRY_STATUSES, with_retries


def scripted(*results):
    """A send that returns (or raises) the given results in order, recording each call."""
    calls = []

    async def send(i: int) -> int:
        result = results[len(calls)]
        calls.append(i)
        if isinstance(result, BaseException):
            raise result
        return result

    return send, calls


def run(coro):
    return asyncio.run(coro)


def test_retries_a_retryable_status_until_it_succeeds():
    send, calls = scripted(500, 503, 200)
    retried = with_retries(send, tries=3, base_s=0.001, seed=1)
    assert run(retried(7)) == 200
    assert calls == [7, 7, 7] and retried.retries == 2


def test_never_retries_a_client_error_or_a_success():
    for status in (200, 400, 401, 413, 422):
        send, calls = scripted(status, 200)
        retried = with_retries(send, tries=3, base_s=0.001)
        assert run(retried(0)) == status and len(calls) == 1 and retried.retries == 0


def test_gives_up_after_the_last_try_with_its_status_or_error():
    send, calls = scripted(503, 503, 503)
    assert run(with_retries(send, tries=3, base_s=0.001)(0)) == 503 and len(calls) == 3
    send, calls = scripted(ConnectionResetError(), ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        run(with_retries(send, tries=2, base_s=0.001)(0))
    assert len(calls) == 2


def test_connection_errors_are_retried_other_exceptions_are_not():
    send, calls = scripted(ConnectionResetError(), 200)
    assert run(with_retries(send, tries=2, base_s=0.001)(0)) == 200
    send, calls = scripted(ValueError("a bug"), 200)
    with pytest.raises(ValueError):
        run(with_retries(send, tries=2, base_s=0.001)(0))
    assert len(calls) == 1


def test_backoff_is_jittered_exponential_and_capped():
    retried = with_retries(scripted()[0], base_s=0.1, cap_s=0.5, seed=3)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        waits = [retried.backoff_s(attempt) for _ in range(200)]
        assert 0 <= min(waits) and max(waits) <= ceiling
        assert max(waits) > 0.7 * ceiling and len(set(waits)) > 150  # spread out, not one value
    assert {408, 429, 500, 502, 503, 504} == set(RETRY_STATUSES)


def test_tries_must_be_positive():
    with pytest.raises(ValueError):
        with_retries(scripted()[0], tries=0)
