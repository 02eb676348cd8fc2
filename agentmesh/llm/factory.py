"""Builds the one provider a process uses, from its settings."""

from __future__ import annotations

from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import LLMProvider
from agentmesh.settings import CommonSettings


def create_provider(settings: CommonSettings) -> LLMProvider:
    if settings.provider == "offline":
        return OfflineProvider(latency_ms=settings.offline_latency_ms)
    from agentmesh.llm.anthropic import AnthropicProvider  # imported lazily: offline runs never load the SDK

    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    return AnthropicProvider(api_key=key, base_url=settings.anthropic_base_url)
