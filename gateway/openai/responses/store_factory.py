"""The response store RESPONSES_STORE_URI names."""

from __future__ import annotations

from gateway.openai.responses.redis_store import RedisResponseStore
from gateway.openai.responses.store import MemoryResponseStore, ResponseStore
from gateway.settings import GatewaySettings


def response_store(settings: GatewaySettings) -> ResponseStore:
    if settings.responses_store_uri.startswith("memory"):
        return MemoryResponseStore(settings.response_retention)
    return RedisResponseStore(settings.responses_store_uri, settings.response_retention)
