"""USD prices per million tokens, and the cost of one call's tokens."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agentmesh.llm.provider import TokenUsage

OFFLINE_MODEL = "agentmesh-offline-demo"

# Cache writes cost 1.25x the input price and cache reads 0.1x (Anthropic's published multipliers).
CACHE_WRITE_MULTIPLIER = 1.25
CACHE_READ_MULTIPLIER = 0.1


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "claude-sonnet-4-6": ModelPrice(3.0, 15.0),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0),
    "claude-opus-4-1": ModelPrice(15.0, 75.0),
    OFFLINE_MODEL: ModelPrice(0.0, 0.0),
}

_DATE_SUFFIX = re.compile(r"-\d{8}$")


def price_for(model: str, table: Mapping[str, ModelPrice] = DEFAULT_PRICES) -> ModelPrice | None:
    """Exact id first, then the id without its date suffix (``claude-haiku-4-5-20251001`` → ``claude-haiku-4-5``)."""
    return table.get(model) or table.get(_DATE_SUFFIX.sub("", model))


def cost_usd(usage: TokenUsage, table: Mapping[str, ModelPrice] = DEFAULT_PRICES) -> float | None:
    """The USD cost of ``usage``, or None when the model is not in the table (unknown, not free)."""
    price = price_for(usage.model, table)
    if price is None:
        return None
    input_equivalent = (
        usage.input_tokens
        + usage.cache_creation_input_tokens * CACHE_WRITE_MULTIPLIER
        + usage.cache_read_input_tokens * CACHE_READ_MULTIPLIER
    )
    return (input_equivalent * price.input_per_mtok + usage.output_tokens * price.output_per_mtok) / 1_000_000
