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

# Cache writes cost 1.25x the input price and cache reads 0.1x (Anthropic's published multipliers).
CACHE_WRITE_MULTIPLIER = 1.25
CACHE_READ_MULTIPLIER = 0.1


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float


PriceTable = Mapping[str, ModelPrice]

DEFAULT_PRICES: PriceTable = {
    "claude-sonnet-4-6": ModelPrice(3.0, 15.0),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0),
    "claude-sonnet-4": ModelPrice(3.0, 15.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice(0.8, 4.0),
    "claude-opus-4-1": ModelPrice(15.0, 75.0),
    OFFLINE_MODEL: ModelPrice(0.0, 0.0),
}

_DATE_SUFFIX = re.compile(r"-\d{8}$")


class PricingFileError(ValueError):
    """MODEL_PRICING_FILE cannot be used; the message says what to fix."""


def price_for(model: str, table: PriceTable = DEFAULT_PRICES) -> ModelPrice | None:
    """Exact id first, then the id without its date suffix (``claude-haiku-4-5-20251001`` → ``claude-haiku-4-5``)."""
    return table.get(model) or table.get(_DATE_SUFFIX.sub("", model))


def cost_usd(usage: TokenUsage, table: PriceTable = DEFAULT_PRICES) -> float | None:
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


def load_prices(path: Path | None) -> PriceTable:
    """The defaults, overridden model by model by a JSON or TOML file of
    ``{"model-id": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}``."""
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
        try:
            table[model] = ModelPrice(float(entry["input_per_mtok"]), float(entry["output_per_mtok"]))
        except (TypeError, KeyError, ValueError):
            raise PricingFileError(
                f"MODEL_PRICING_FILE {path}: {model!r} needs numeric input_per_mtok and output_per_mtok"
            ) from None
        if min(table[model].input_per_mtok, table[model].output_per_mtok) < 0:
            raise PricingFileError(f"MODEL_PRICING_FILE {path}: {model!r} has a negative price")
    return table
