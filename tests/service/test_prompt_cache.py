"""Prompt caching on the wire: our providers mark a shared prefix, and the fake APIs cache it as the real ones do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from agentmesh.llm.openai import OpenAIProvider
from agentmesh.llm.provider import CachedPrefix, LLMProvider, Message, Prompt
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_api import Behaviour
from tests.support.fake_openai import FakeOpenAI

HAIKU = "claude-haiku-4-5-20251001"  # caches prefixes of 4,096 tokens or more
SONNET = "claude-sonnet-4-5"  # 1,024 or more
OPENAI_KEY = "sk-proj-fake-openai-key-0123456789"


def shared(tokens: int) -> str:
    """A prefix of ``tokens`` of the fakes' tokens (4 characters each)."""
    return ("Shared policy text. " * (tokens // 5 + 1))[: tokens * 4]


def cached_prompt(model: str, prefix: str, subtask: str, key: str = "run-1") -> Prompt:
    return Prompt(
        model=model,
        system=f"{prefix}\n\nYou are a careful analyst.",
        messages=[Message("user", f"Subtask {subtask}: check it")],
        max_tokens=64,
        cache=CachedPrefix(chars=len(prefix), key=key),
    )


async def test_the_shared_prefix_is_written_once_then_read_at_a_tenth(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    prefix = shared(5_000)
    first = await anthropic_provider.complete(cached_prompt(HAIKU, prefix, "t1"))
    second = await anthropic_provider.complete(cached_prompt(HAIKU, prefix, "t2"))

    assert fake_anthropic.requests[0].body["system"] == [
        {"type": "text", "text": prefix, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "You are a careful analyst."},
    ]
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (5_000, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, 5_000)
    # input_tokens excludes the cache tokens, as Anthropic's do: only the subtask's own part is left.
    assert second.usage.input_tokens < 50


@pytest.mark.parametrize(("model", "cached"), [(HAIKU, False), (SONNET, True)])
async def test_below_the_models_minimum_nothing_is_cached(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic, model: str, cached: bool
) -> None:
    prefix = shared(2_000)
    await anthropic_provider.complete(cached_prompt(model, prefix, "t1"))
    second = await anthropic_provider.complete(cached_prompt(model, prefix, "t2"))
    assert (second.usage.cache_read_input_tokens > 0) is cached


async def test_calls_sent_together_all_miss_and_all_write(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    """Why the orchestrator warms the prefix first: a prefix is readable only once its writer's response began."""
    prefix = shared(5_000)
    fake_anthropic.script(Behaviour(latency_s=1.0), times=2)
    both = await asyncio.gather(*(anthropic_provider.complete(cached_prompt(HAIKU, prefix, t)) for t in ("a", "b")))
    assert [c.usage.cache_creation_input_tokens for c in both] == [5_000, 5_000]


async def test_a_cached_prefix_expires_five_minutes_after_its_last_use(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    now = [0.0]
    fake_anthropic.prompt_cache.clock = lambda: now[0]
    prefix = shared(5_000)
    await anthropic_provider.complete(cached_prompt(HAIKU, prefix, "t1"))
    now[0] = 299.0
    assert (await anthropic_provider.complete(cached_prompt(HAIKU, prefix, "t2"))).usage.cache_read_input_tokens
    now[0] = 299.0 + 301.0  # a read renewed it at 299 s; 301 s later it is gone
    late = await anthropic_provider.complete(cached_prompt(HAIKU, prefix, "t3"))
    assert (late.usage.cache_read_input_tokens, late.usage.cache_creation_input_tokens) == (0, 5_000)


async def test_without_a_cached_prefix_the_system_prompt_is_one_string(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    prompt = Prompt(model=HAIKU, system=shared(5_000), messages=[Message("user", "hi")], max_tokens=16)
    await anthropic_provider.complete(prompt)
    await anthropic_provider.complete(prompt)
    assert isinstance(fake_anthropic.requests[1].body["system"], str)
    assert (fake_anthropic.requests[1].usage or {})["cache_read_input_tokens"] == 0


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
async def openai_provider(fake_openai: FakeOpenAI) -> AsyncIterator[LLMProvider]:
    provider = OpenAIProvider(api_key=OPENAI_KEY, base_url=f"{fake_openai.base_url}/v1")
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_openai_calls_share_the_runs_prompt_cache_key_and_read_the_cached_prefix(
    openai_provider: LLMProvider, fake_openai: FakeOpenAI
) -> None:
    prefix = shared(3_000)
    await openai_provider.complete(cached_prompt("gpt-4.1-mini", prefix, "t1", key="run-7"))
    second = await openai_provider.complete(cached_prompt("gpt-4.1-mini", prefix, "t2", key="run-7"))

    assert [r.body["prompt_cache_key"] for r in fake_openai.requests] == ["run-7", "run-7"]
    assert fake_openai.requests[0].body["messages"][0]["content"].startswith(prefix)  # the system message leads
    # OpenAI reports cached tokens inside prompt_tokens, in 128-token steps from 1,024; ours count apart.
    assert 2_900 <= second.usage.cache_read_input_tokens <= 3_000
    assert second.usage.input_tokens < 150


async def test_openai_gets_no_prompt_cache_key_without_a_cached_prefix(
    openai_provider: LLMProvider, fake_openai: FakeOpenAI
) -> None:
    await openai_provider.complete(
        Prompt(model="gpt-4.1-mini", system="s", messages=[Message("user", "hi")], max_tokens=8)
    )
    assert "prompt_cache_key" not in fake_openai.requests[0].body
