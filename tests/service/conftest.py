"""Fixtures for service tests: a fake Anthropic API on a loopback port, and a provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.provider import LLMProvider
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from tests.support.fake_anthropic import FakeAnthropic

FAKE_API_KEY = "sk-ant-fake-test-key-0123456789"
# Tiny backoff so retry tests are quick; retry-after still applies in full.
FAST_RETRY = RetryPolicy(max_attempts=3, exponential_multiplier=0.01, exponential_max=0.05)


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=FAKE_API_KEY) as fake:
        yield fake


@pytest.fixture
async def anthropic_provider(fake_anthropic: FakeAnthropic) -> AsyncIterator[LLMProvider]:
    provider = RetryingProvider(AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url), FAST_RETRY)
    try:
        yield provider
    finally:
        await provider.aclose()
