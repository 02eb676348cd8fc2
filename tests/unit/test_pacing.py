"""Rate-limit headers read into one shape, and the pacer's decisions, on a simulated clock (no real waiting)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest

from agentmesh.deadline import deadline_in
from agentmesh.llm.pacer import HEADROOM, NoQuotaInTime, Pacer
from agentmesh.llm.quota import Limit, QuotaReading, parse_duration_s, parse_rfc3339_s, read_quota

NOW = datetime(2026, 12, 3, 17, 40, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1s", 1.0), ("20ms", 0.02), ("1.5s", 1.5), ("1h2m3s", 3723.0), ("0.25", 0.25), ("7x", None)],
)
def test_openai_reset_durations_read_as_seconds(text: str, seconds: float | None) -> None:
    assert parse_duration_s(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_anthropic_reset_times_read_as_seconds_from_now() -> None:
    assert parse_rfc3339_s("2026-12-03T17:40:01.500Z", NOW) == pytest.approx(1.5)
    assert parse_rfc3339_s("2026-12-03T17:39:00Z", NOW) == 0.0  # past: full already
    assert parse_rfc3339_s("yesterday", NOW) is None


def test_both_apis_headers_give_the_same_reading() -> None:
    anthropic = read_quota(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "40",
            "anthropic-ratelimit-requests-reset": "2026-12-03T17:40:12Z",
            "retry-after": "3",
        },
        NOW,
    )
    openai = read_quota(
        {
            "x-ratelimit-limit-requests": "50",
            "x-ratelimit-remaining-requests": "40",
            "x-ratelimit-reset-requests": "12s",
        },
        NOW,
    )
    assert anthropic.requests == openai.requests == Limit(limit=50, remaining=40, reset_s=12)
    assert anthropic.requests is not None and anthropic.requests.refill_per_s == pytest.approx(10 / 12)
    assert anthropic.retry_after_s == 3 and openai.retry_after_s is None
    assert not read_quota({"content-type": "application/json"}, NOW).has_limits


class SimulatedTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def headers_of(remaining: int, limit: int = 10, refill_per_s: float = 10.0) -> QuotaReading:
    return QuotaReading(requests=Limit(limit=limit, remaining=remaining, reset_s=(limit - remaining) / refill_per_s))


async def test_one_call_probes_and_the_rest_follow_the_learned_bucket() -> None:
    time = SimulatedTime()
    pacer = Pacer("anthropic model m", clock=time.clock, sleep=time.sleep)
    assert await pacer.acquire() == 0.0  # the probe
    others = [asyncio.ensure_future(pacer.acquire()) for _ in range(12)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in others)  # they wait for what the probe learns
    pacer.answered(headers_of(remaining=9))
    waits = await asyncio.gather(*others)
    assert waits[:9] == [0.0] * 9  # the nine left go at once
    interval = 1 / (10 * HEADROOM)
    assert waits[9:] == pytest.approx([interval, 2 * interval, 3 * interval])  # then at the learned rate


async def test_a_429_pauses_every_caller_for_its_retry_after() -> None:
    time = SimulatedTime()
    pacer = Pacer("openai model m", clock=time.clock, sleep=time.sleep)
    await pacer.acquire()
    pacer.answered(headers_of(remaining=9))
    pacer.rate_limited(2.0, headers_of(remaining=0))
    started = time.now
    await pacer.acquire()
    assert time.now - started >= 2.0


async def test_without_headers_nothing_is_paced_until_a_429_then_the_rate_halves() -> None:
    time = SimulatedTime()
    pacer = Pacer("openai model m", clock=time.clock, sleep=time.sleep)
    await pacer.acquire()
    pacer.answered(QuotaReading())  # an answer without rate-limit headers (vLLM)
    for _ in range(7):
        assert await pacer.acquire() == 0.0
        pacer.answered(QuotaReading())
    assert pacer.mode == "adaptive" and math.isinf(pacer.adaptive_rate)
    pacer.rate_limited(1.0, QuotaReading())
    assert pacer.adaptive_rate == 4.0  # half of the 8 that got through in the last second
    pacer.rate_limited(1.0, QuotaReading())  # the same congestion: no second halving
    assert pacer.adaptive_rate == 4.0
    pacer.answered(QuotaReading())
    assert pacer.adaptive_rate == pytest.approx(4.25)  # additive increase


async def test_a_wait_longer_than_the_deadline_fails_at_once_without_a_call() -> None:
    time = SimulatedTime()
    pacer = Pacer("anthropic model m", clock=time.clock, sleep=time.sleep)
    await pacer.acquire()
    pacer.rate_limited(30.0, headers_of(remaining=0))
    with deadline_in(5.0), pytest.raises(NoQuotaInTime, match="before its deadline"):
        await pacer.acquire()
    assert time.now == 1000.0 and pacer.calls_admitted == 1


async def test_a_caller_that_must_wait_is_told_once_with_an_estimate() -> None:
    time = SimulatedTime()
    pacer = Pacer("anthropic model m", clock=time.clock, sleep=time.sleep)
    await pacer.acquire()
    pacer.answered(headers_of(remaining=0))
    told: list[tuple[float, str]] = []

    async def queued(estimate: float, why: str) -> None:
        told.append((estimate, why))

    await pacer.acquire(queued=queued)
    assert len(told) == 1
    assert told[0][0] == pytest.approx(1 / (10 * HEADROOM))
    assert "rate limit of anthropic model m" in told[0][1]
