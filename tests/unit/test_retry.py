"""The retry policy: retries upstream faults with backoff, honours retry-after, and never waits past the deadline."""

from __future__ import annotations

import logging
import time

import pytest

from agentmesh.deadline import deadline_in, remaining_s
from agentmesh.llm.provider import BadRequest, RateLimited, Unavailable
from agentmesh.llm.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=3, exponential_multiplier=0.01, exponential_max=0.02)


class Flaky:
    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_upstream_faults_are_retried_until_success() -> None:
    flaky = Flaky(RateLimited("529", retryable=True), Unavailable("503", retryable=True))
    assert await FAST.call(flaky) == "ok"
    assert flaky.calls == 3


async def test_rejected_requests_are_not_retried() -> None:
    flaky = Flaky(BadRequest("400"))
    with pytest.raises(BadRequest):
        await FAST.call(flaky)
    assert flaky.calls == 1


async def test_retry_after_is_honoured_when_the_deadline_allows() -> None:
    flaky = Flaky(RateLimited("429", retryable=True, retry_after_s=0.3))
    started = time.monotonic()
    with deadline_in(5):
        assert await FAST.call(flaky) == "ok"
    assert time.monotonic() - started >= 0.3
    assert flaky.calls == 2


async def test_a_wait_that_would_pass_the_deadline_is_not_taken(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky(RateLimited("429", retryable=True, retry_after_s=30))
    started = time.monotonic()
    with deadline_in(2), caplog.at_level(logging.WARNING), pytest.raises(RateLimited):
        await FAST.call(flaky)
    assert time.monotonic() - started < 1
    assert flaky.calls == 1
    assert any("next wait would pass the deadline" in r.getMessage() for r in caplog.records)


async def test_backoff_stops_once_the_deadline_is_too_close() -> None:
    policy = RetryPolicy(max_attempts=50, exponential_multiplier=0.2, exponential_max=0.2)
    flaky = Flaky(*(Unavailable("503", retryable=True) for _ in range(50)))
    started = time.monotonic()
    with deadline_in(0.5), pytest.raises(Unavailable):
        await policy.call(flaky)
    assert time.monotonic() - started < 0.5
    assert 1 <= flaky.calls < 50


async def test_a_narrower_deadline_wins_and_the_outer_one_comes_back() -> None:
    assert remaining_s() is None
    with deadline_in(10):
        with deadline_in(1):
            assert 0 < (remaining_s() or 0) <= 1
        with deadline_in(100):
            assert 9 < (remaining_s() or 0) <= 10
    assert remaining_s() is None
