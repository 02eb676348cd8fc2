"""The circuit breaker: opens on consecutive upstream faults, fails fast, lets one probe through, counts only faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from agentmesh.deadline import deadline_in
from agentmesh.llm.breaker import BreakerProvider, BreakerRegistry, BreakerState, CircuitBreaker, CircuitOpen
from agentmesh.llm.provider import (
    BadRequest,
    Completion,
    Message,
    Prompt,
    RateLimited,
    StreamDone,
    StreamItem,
    TextDelta,
    TokenUsage,
    Tool,
    ToolCall,
    Unavailable,
)
from agentmesh.rpc.errors import status_for

MODEL = "claude-haiku-4-5-20251001"
PROMPT = Prompt(model=MODEL, system="", messages=[Message(role="user", content="hi")], max_tokens=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A provider whose calls fail with the queued exceptions, then succeed; ``gate`` holds calls until set."""

    name = "scripted"

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def _outcome(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)

    async def complete(self, prompt: Prompt) -> Completion:
        await self._outcome()
        return Completion(text="ok", usage=TokenUsage(model=prompt.model))

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        await self._outcome()
        return ToolCall(input={}, usage=TokenUsage(model=prompt.model))

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        await self._outcome()
        yield TextDelta("a")
        yield TextDelta("b")
        yield StreamDone(TokenUsage(model=prompt.model))

    async def aclose(self) -> None:
        return None


def guarded(inner: Scripted, clock: Clock, threshold: int = 3, timeout_s: float = 30.0) -> BreakerProvider:
    return BreakerProvider(inner, BreakerRegistry(threshold, timeout_s, clock))


def overloaded() -> RateLimited:
    return RateLimited("overloaded", retryable=True)


async def fail_times(provider: BreakerProvider, times: int) -> None:
    for _ in range(times):
        with pytest.raises((RateLimited, Unavailable)):
            await provider.complete(PROMPT)


async def test_consecutive_faults_open_it_and_then_calls_fail_fast_without_reaching_the_model() -> None:
    clock, inner = Clock(), Scripted(overloaded(), Unavailable("down", True), overloaded())
    provider = guarded(inner, clock)
    await fail_times(provider, 3)
    breaker = provider.registry.get(MODEL)
    assert breaker.state is BreakerState.OPEN
    clock.now += 12
    with pytest.raises(CircuitOpen) as failure:
        await provider.complete(PROMPT)
    assert inner.calls == 3
    message = str(failure.value)
    assert MODEL in message and "open after 3 consecutive upstream failures" in message
    assert "failing fast for another 18.0 s" in message
    assert status_for(failure.value)[0] == grpc.StatusCode.UNAVAILABLE


async def test_a_success_resets_the_count() -> None:
    inner = Scripted(overloaded(), overloaded())
    provider = guarded(inner, Clock())
    await fail_times(provider, 2)
    await provider.complete(PROMPT)
    inner.failures = [overloaded(), overloaded()]
    await fail_times(provider, 2)
    assert provider.registry.get(MODEL).state is BreakerState.CLOSED


async def test_rejected_requests_are_not_upstream_faults() -> None:
    inner = Scripted(*(BadRequest("max_tokens too large") for _ in range(5)))
    provider = guarded(inner, Clock(), threshold=2)
    for _ in range(5):
        with pytest.raises(BadRequest):
            await provider.complete(PROMPT)
    assert provider.registry.get(MODEL).state is BreakerState.CLOSED
    assert inner.calls == 5


async def test_half_open_lets_one_probe_through_and_its_success_closes_it() -> None:
    clock, inner = Clock(), Scripted(overloaded(), overloaded())
    provider = guarded(inner, clock, threshold=2, timeout_s=30)
    await fail_times(provider, 2)
    clock.now += 30
    breaker = provider.registry.get(MODEL)
    assert breaker.state is BreakerState.HALF_OPEN
    inner.gate = asyncio.Event()
    probe = asyncio.create_task(provider.complete(PROMPT))
    await asyncio.sleep(0)  # the probe is now inside the model call
    with pytest.raises(CircuitOpen, match="a probe call is testing it"):
        await provider.complete(PROMPT)
    inner.gate.set()
    await probe
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0
    await provider.complete(PROMPT)
    assert inner.calls == 4


async def test_a_failed_probe_opens_it_for_a_whole_new_timeout() -> None:
    clock, inner = Clock(), Scripted(overloaded(), overloaded(), overloaded())
    provider = guarded(inner, clock, threshold=2, timeout_s=30)
    await fail_times(provider, 2)
    clock.now += 31
    await fail_times(provider, 1)
    breaker = provider.registry.get(MODEL)
    assert breaker.state is BreakerState.OPEN
    clock.now += 29
    assert breaker.state is BreakerState.OPEN
    clock.now += 1
    assert breaker.state is BreakerState.HALF_OPEN


async def test_a_caller_that_goes_away_is_not_a_fault_and_frees_the_probe() -> None:
    clock, inner = Clock(), Scripted(overloaded(), overloaded())
    provider = guarded(inner, clock, threshold=2)
    await fail_times(provider, 2)
    clock.now += 30
    inner.gate = asyncio.Event()
    probe = asyncio.create_task(provider.complete(PROMPT))
    await asyncio.sleep(0)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    breaker = provider.registry.get(MODEL)
    assert breaker.state is BreakerState.HALF_OPEN
    inner.gate.set()
    await provider.complete(PROMPT)  # the next call may probe
    assert breaker.state is BreakerState.CLOSED


async def test_a_call_cancelled_by_its_deadline_is_a_fault() -> None:
    inner = Scripted()
    inner.gate = asyncio.Event()
    provider = guarded(inner, Clock(), threshold=1)
    with deadline_in(0.05), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await provider.complete(PROMPT)
    assert provider.registry.get(MODEL).state is BreakerState.OPEN


async def test_a_stream_counts_when_it_ends() -> None:
    clock, inner = Clock(), Scripted(Unavailable("cut", True))
    provider = guarded(inner, clock, threshold=2)
    with pytest.raises(Unavailable):
        async for _ in provider.stream(PROMPT):
            pass
    breaker = provider.registry.get(MODEL)
    assert breaker.consecutive_failures == 1
    items = [item async for item in provider.stream(PROMPT)]
    assert isinstance(items[-1], StreamDone)
    assert breaker.consecutive_failures == 0
    stream = provider.stream(PROMPT)
    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()  # the consumer stopped early: no outcome either way
    assert breaker.consecutive_failures == 0 and breaker.state is BreakerState.CLOSED


async def test_breakers_are_per_model_and_listeners_hear_each_transition() -> None:
    clock = Clock()
    registry = BreakerRegistry(failure_threshold=1, reset_timeout_s=5, clock=clock)
    heard: list[tuple[str, str, str]] = []
    registry.listeners.append(lambda breaker, old, new: heard.append((breaker.name, old.value, new.value)))
    provider = BreakerProvider(Scripted(overloaded()), registry)
    await fail_times(provider, 1)
    await provider.call_tool(
        Prompt(model="other-model", system="", messages=PROMPT.messages, max_tokens=10),
        Tool(name="plan", description="", input_schema={}),
    )
    assert registry.states() == {MODEL: BreakerState.OPEN, "other-model": BreakerState.CLOSED}
    clock.now += 5
    await provider.complete(PROMPT)
    assert heard == [(MODEL, "closed", "open"), (MODEL, "open", "half_open"), (MODEL, "half_open", "closed")]


def test_the_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("m", failure_threshold=0)
