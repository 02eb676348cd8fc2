"""USD prices per million tokens, the cost of one call's tokens, and the operator's price file."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agentmesh.llm.provider import TokenUsage

OFFLINE_MODEL = "agentmesh-offline-demo"

# Cache writes cost 1.25x the input price and cache reads 0.1x (Anthropic's published multipliers);
# a model with its own cached-input price (OpenAI publishes one per model) uses that instead.
CACHE_WRITE_MULTIPLIER = 1.25
CACHE_READ_MULTIPLIER = 0.1


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    @property
    def cache_read_per_mtok(self) -> float:
        if self.cached_input_per_mtok is not None:
            return self.cached_input_per_mtok
        return self.input_per_mtok * CACHE_READ_MULTIPLIER


PriceTable = Mapping[str, ModelPrice]

DEFAULT_PRICES: PriceTable = {
    "claude-sonnet-4-6": ModelPrice(3.0, 15.0),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0),
    "claude-opus-4-1": ModelPrice(15.0, 75.0),
    # OpenAI, standard tier (input, output, cached input), from openai.com/api/pricing.
    "gpt-5.1": ModelPrice(1.25, 10.0, 0.125),
    "gpt-5": ModelPrice(1.25, 10.0, 0.125),
    "gpt-5-mini": ModelPrice(0.25, 2.0, 0.025),
    "gpt-5-nano": ModelPrice(0.05, 0.4, 0.005),
    "gpt-4.1": ModelPrice(2.0, 8.0, 0.5),
    "gpt-4.1-mini": ModelPrice(0.4, 1.6, 0.1),
    "gpt-4.1-nano": ModelPrice(0.1, 0.4, 0.025),
    "gpt-4o": ModelPrice(2.5, 10.0, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.6, 0.075),
    "o3": ModelPrice(2.0, 8.0, 0.5),
    "o4-mini": ModelPrice(1.1, 4.4, 0.275),
    OFFLINE_MODEL: ModelPrice(0.0, 0.0),
}

# Anthropic dates its ids -20251001, OpenAI -2024-08-06.
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


class PricingFileError(ValueError):
    """MODEL_PRICING_FILE cannot be used; the message says what to fix."""


def price_for(model: str, table: PriceTable = DEFAULT_PRICES) -> ModelPrice | None:
    """Exact id first, then the id without its date suffix (``claude-haiku-4-5-20251001`` → ``claude-haiku-4-5``,
    ``gpt-4o-2024-08-06`` → ``gpt-4o``)."""
    return table.get(model) or table.get(_DATE_SUFFIX.sub("", model))


def cost_usd(usage: TokenUsage, table: PriceTable = DEFAULT_PRICES) -> float | None:
    """The USD cost of ``usage``, or None when the model is not in the table (unknown, not free)."""
    price = price_for(usage.model, table)
    if price is None:
        return None
    input_equivalent = usage.input_tokens + usage.cache_creation_input_tokens * CACHE_WRITE_MULTIPLIER
    return (
        input_equivalent * price.input_per_mtok
        + usage.cache_read_input_tokens * price.cache_read_per_mtok
        + usage.output_tokens * price.output_per_mtok
    ) / 1_000_000


def load_prices(path: Path | None) -> PriceTable:
    """The defaults, overridden model by model by a JSON or TOML file of
    ``{"model-id": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}`` (optionally ``cached_input_per_mtok``)."""
    if path is None:
        return DEFAULT_PRICES
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise PricingFileError(f"MODEL_PRICING_FILE {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise PricingFileError(f"MODEL_PRICING_FILE {path}: expected a table of models")
    table = dict(DEFAULT_PRICES)
    for model, entry in raw.items():
        table[model] = _price_entry(path, model, entry)
    return table


def _price_entry(path: Path, model: str, entry: object) -> ModelPrice:
    try:
        if not isinstance(entry, dict):
            raise TypeError(entry)
        cached = entry.get("cached_input_per_mtok")
        price = ModelPrice(
            float(entry["input_per_mtok"]),
            float(entry["output_per_mtok"]),
            None if cached is None else float(cached),
        )
    except (TypeError, KeyError, ValueError):
        raise PricingFileError(
            f"MODEL_PRICING_FILE {path}: {model!r} needs numeric input_per_mtok and output_per_mtok "
            "(and optionally cached_input_per_mtok)"
        ) from None
    if min(price.input_per_mtok, price.output_per_mtok, price.cache_read_per_mtok) < 0:
        raise PricingFileError(f"MODEL_PRICING_FILE {path}: {model!r} has a negative price")
    return price
