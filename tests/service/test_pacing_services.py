"""Pacing against the fake APIs' token-bucket rate limit, through the real SDKs: fan-outs that fit the quota, a
subtask shown queued while it waits, and what one process learns reaching another through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.openai import OpenAIProvider
from agentmesh.llm.pacing import Pacers, PacingProvider, watch_queue
from agentmesh.llm.provider import Completion, LLMProvider, Message, Prompt, RateLimited
from agentmesh.llm.quota_share import RedisQuotaShare
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.fake_anthropic import Behaviour, FakeAnthropic
from tests.support.fake_api import FakeAPI
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_rate_limit import RateLimit
from tests.support.mesh import inprocess_mesh
from tests.support.redis_server import redis_server

KEY = "sk-ant-fake-pacing-key-0123456789"
PROMPT = Prompt(model="claude-haiku-4-5", system="", messages=[Message("user", "Summarise a section")], max_tokens=64)
SUBTASKS = 100
CAPACITY, REFILL_PER_S = 10, 10.0
# What the bucket allows for 100 calls: 10 at once, then 90 at 10 a second.
QUOTA_S = (SUBTASKS - CAPACITY) / REFILL_PER_S


def paced(backend: AnthropicProvider | OpenAIProvider, pacers: Pacers | None = None) -> LLMProvider:
    return RetryingProvider(PacingProvider(backend, pacers or Pacers(), backend.quota_scope), RetryPolicy())


async def fan_out(provider: LLMProvider, calls: int) -> tuple[list[Completion | BaseException], float]:
    started = time.monotonic()
    results = await asyncio.gather(*(provider.complete(PROMPT) for _ in range(calls)), return_exceptions=True)
    return results, time.monotonic() - started


async def test_a_fan_out_with_rate_limit_headers_fits_the_quota_without_failures_or_429s() -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        fake.set_rate_limit(RateLimit(CAPACITY, REFILL_PER_S))
        provider = paced(AnthropicProvider(api_key=KEY, base_url=fake.base_url))
        try:
            results, wall_s = await fan_out(provider, SUBTASKS)
        finally:
            await provider.aclose()
        state = fake.state()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert state["rate_limited"] <= 5  # a handful at most (measured: 0)
    assert QUOTA_S * 0.9 <= wall_s <= QUOTA_S * 1.2  # measured: within 5 % of what the quota allows


@pytest.mark.parametrize("fake_class", [FakeOpenAI, FakeAnthropic])
async def test_without_headers_only_429s_with_retry_after_still_no_subtask_fails(fake_class: type[FakeAPI]) -> None:
    with fake_class(api_key=KEY) as fake:
        fake.set_rate_limit(RateLimit(CAPACITY, REFILL_PER_S, headers=False))
        backend: AnthropicProvider | OpenAIProvider
        if fake_class is FakeOpenAI:
            backend = OpenAIProvider(api_key=KEY, base_url=f"{fake.base_url}/v1")
        else:
            backend = AnthropicProvider(api_key=KEY, base_url=fake.base_url)
        provider = paced(backend)
        try:
            results, _ = await fan_out(provider, SUBTASKS)
        finally:
            await provider.aclose()
        state = fake.state()
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert state["rate_limited"] < SUBTASKS / 4  # what the adaptive rate costs (measured: under 10)


async def test_a_subtask_waiting_for_quota_is_reported_queued_between_its_start_and_its_finish() -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        fake.set_rate_limit(RateLimit(capacity=2, refill_per_s=4.0))
        provider = paced(AnthropicProvider(api_key=KEY, base_url=fake.base_url))
        request = orchestrator_pb2.RunRequest(
            messages=[common_pb2.ChatMessage(role="user", content="\n".join(f"part {n}" for n in range(1, 7)))]
        )
        try:
            async with (
                inprocess_mesh(provider) as mesh,
                grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel,
            ):
                events = [e async for e in orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=60)]
        finally:
            await provider.aclose()
    order = [(e.WhichOneof("event"), _subtask_id(e)) for e in events]
    queued = [subtask_id for kind, subtask_id in order if kind == "subtask_queued"]
    assert queued, order  # six worker calls on a bucket of two: some wait
    for subtask_id in queued:
        assert order.index(("subtask_started", subtask_id)) < order.index(("subtask_queued", subtask_id))
        assert order.index(("subtask_queued", subtask_id)) < order.index(("subtask_finished", subtask_id))
    finished = [e.subtask_finished for e in events if e.HasField("subtask_finished")]
    assert all(f.outcome == common_pb2.SUBTASK_OUTCOME_OK for f in finished)
    assert any(f.queued_ms > 0 for f in finished if f.subtask_id in queued)
    reasons = [e.subtask_queued.reason for e in events if e.HasField("subtask_queued")]
    assert all("claude-haiku" in reason or "anthropic" in reason for reason in reasons), reasons


def _subtask_id(event: orchestrator_pb2.RunEvent) -> str:
    kind = event.WhichOneof("event")
    return getattr(getattr(event, kind), "subtask_id", "") if kind else ""


@pytest.fixture
async def redis_uri(tmp_path: Path) -> AsyncIterator[str]:
    with redis_server(tmp_path) as uri:
        yield uri


async def test_a_429_one_process_gets_pauses_another_sharing_redis(redis_uri: str) -> None:
    with FakeAnthropic(api_key=KEY) as fake:
        fake.set_rate_limit(RateLimit(CAPACITY, REFILL_PER_S))
        shares = [RedisQuotaShare(redis_uri), RedisQuotaShare(redis_uri)]
        first, second = (
            PacingProvider(AnthropicProvider(api_key=KEY, base_url=fake.base_url), Pacers(share), "same key")
            for share in shares
        )
        try:
            await first.complete(PROMPT)  # learns the bucket, and tells Redis
            fake.script(Behaviour(status=429, retry_after=2))
            with pytest.raises(RateLimited):
                await first.complete(PROMPT)
            paused_at = time.monotonic()
            told: list[str] = []

            async def queued(_estimate_s: float, why: str) -> None:
                told.append(why)

            with watch_queue(queued) as watch:
                await second.complete(PROMPT)
        finally:
            for provider in (first, second):
                await provider.aclose()
            for share in shares:
                await share.aclose()
    assert told and "429" in told[0]  # the second process waited out the first one's retry-after...
    assert watch.waited_s >= 1.5 and time.monotonic() - paused_at >= 1.5
    assert [r.status for r in fake.requests] == [200, 429, 200]  # ...instead of meeting a 429 of its own
