"""Builds the one provider a process uses, from its settings."""

from __future__ import annotations

from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import LLMProvider
from agentmesh.settings import CommonSettings


def create_provider(settings: CommonSettings) -> LLMProvider:
    if settings.provider == "offline":
        return OfflineProvider(latency_ms=settings.offline_latency_ms)
    from agentmesh.llm.anthropic import AnthropicProvider  # imported lazily: offline runs never load the SDK
    from agentmesh.llm.retry import RetryPolicy

    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    retry = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        exponential_multiplier=settings.retry_exponential_multiplier,
        exponential_max=settings.retry_exponential_max,
    )
    return AnthropicProvider(api_key=key, base_url=settings.anthropic_base_url, retry=retry)
