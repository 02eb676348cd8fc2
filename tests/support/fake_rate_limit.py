"""A fake API's rate limit: a token bucket of requests, with the headers each real API sends about it.

``RateLimit(capacity=10, refill_per_s=10)`` lets 10 requests through at once and refills 10 a second,
continuously. A request that finds less than one token left gets a 429 with ``retry-after`` (whole seconds, as
Anthropic and OpenAI send it). With ``headers`` (the default) every answer, 429s included, carries the API's
rate-limit headers: Anthropic's ``anthropic-ratelimit-requests-{limit,remaining,reset}`` (the reset an RFC 3339
time, with fractions of a second) or OpenAI's ``x-ratelimit-{limit,remaining,reset}-requests`` (the reset a
duration such as ``120ms`` or ``6m0s``); without, a server like vLLM behind a limiting proxy: only the 429.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class RateLimit:
    capacity: float
    refill_per_s: float
    headers: bool = True
    tokens: float = field(default=-1.0, repr=False)  # -1: full at the first request
    updated: float = field(default=0.0, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RateLimit:
        known = {f.name for f in dataclasses.fields(cls) if f.repr}
        if unknown := set(data) - known:
            raise ValueError(f"unknown rate limit fields: {sorted(unknown)}")
        limit = cls(**data)
        if limit.capacity < 1 or limit.refill_per_s <= 0:
            raise ValueError("a rate limit needs capacity >= 1 and refill_per_s > 0")
        return limit

    def take(self, now: float) -> bool:
        """Takes one request's token; False (and nothing taken) when less than one is left."""
        if self.tokens < 0:
            self.tokens, self.updated = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def retry_after_s(self) -> int:
        return max(1, math.ceil((1 - self.tokens) / self.refill_per_s))

    def full_in_s(self) -> float:
        return (self.capacity - self.tokens) / self.refill_per_s


def anthropic_headers(limit: RateLimit) -> dict[str, str]:
    full_at = datetime.fromtimestamp(time.time() + limit.full_in_s(), UTC)
    return {
        "anthropic-ratelimit-requests-limit": str(int(limit.capacity)),
        "anthropic-ratelimit-requests-remaining": str(int(limit.tokens)),
        "anthropic-ratelimit-requests-reset": full_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def openai_headers(limit: RateLimit) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(int(limit.capacity)),
        "x-ratelimit-remaining-requests": str(int(limit.tokens)),
        "x-ratelimit-reset-requests": go_duration(limit.full_in_s()),
    }


def go_duration(seconds: float) -> str:
    """As OpenAI writes it: ``20ms`` under a second, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
