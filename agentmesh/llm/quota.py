"""What a model API's response says about its rate limits: Anthropic's and OpenAI's headers read into one shape.

Anthropic sends ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, the reset as an RFC 3339 time at
which the bucket is full again; OpenAI (and servers copying it) ``x-ratelimit-{limit,remaining,reset}-{requests,
tokens}``, the reset as a Go-style duration until then (``6m0s``, ``1s``, ``20ms``). Both limits are token buckets
refilled continuously, so the rate a bucket refills at is what it misses divided by the time until it is full.
Pure: no I/O, clocks passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agentmesh.llm.upstream import retry_after_s

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|h|m|s)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Limit:
    """One bucket (requests or tokens) as the response left it: ``reset_s`` is seconds until it is full."""

    limit: float
    remaining: float
    reset_s: float

    @property
    def refill_per_s(self) -> float | None:
        """The bucket's refill rate; None when the response does not tell (a full bucket, or no reset time)."""
        missing = self.limit - self.remaining
        if missing <= 0 or self.reset_s <= 0:
            return None
        return missing / self.reset_s


@dataclass(frozen=True)
class QuotaReading:
    """The rate-limit headers of one response; both buckets None means the API sent none (vLLM, Ollama)."""

    requests: Limit | None = None
    tokens: Limit | None = None
    retry_after_s: float | None = None

    @property
    def has_limits(self) -> bool:
        return self.requests is not None or self.tokens is not None


def read_quota(headers: Mapping[str, str], now_epoch_s: float) -> QuotaReading:
    """The reading of a response's headers (names lower-case or as sent; httpx headers match either way)."""
    return QuotaReading(
        requests=_anthropic(headers, "requests", now_epoch_s) or _openai(headers, "requests"),
        tokens=_anthropic(headers, "tokens", now_epoch_s) or _openai(headers, "tokens"),
        retry_after_s=retry_after_s(headers),
    )


def parse_duration_s(value: str) -> float | None:
    """Seconds of a Go-style duration (``6m0s``, ``1.5s``, ``20ms``, ``1h2m``); a bare number is seconds."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def parse_rfc3339_s(value: str, now_epoch_s: float) -> float | None:
    """Seconds from now until an RFC 3339 time (``2026-12-03T17:40:01Z``, fractions allowed); 0 once past."""
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_epoch_s)


def _anthropic(headers: Mapping[str, str], bucket: str, now_epoch_s: float) -> Limit | None:
    prefix = f"anthropic-ratelimit-{bucket}-"
    return _limit(
        headers.get(prefix + "limit"),
        headers.get(prefix + "remaining"),
        headers.get(prefix + "reset"),
        lambda reset: parse_rfc3339_s(reset, now_epoch_s),
    )


def _openai(headers: Mapping[str, str], bucket: str) -> Limit | None:
    return _limit(
        headers.get(f"x-ratelimit-limit-{bucket}"),
        headers.get(f"x-ratelimit-remaining-{bucket}"),
        headers.get(f"x-ratelimit-reset-{bucket}"),
        parse_duration_s,
    )


def _limit(
    limit: str | None, remaining: str | None, reset: str | None, parse_reset: Callable[[str], float | None]
) -> Limit | None:
    if remaining is None:
        return None
    try:
        left = max(0.0, float(remaining))
        most = float(limit) if limit is not None else left
    except ValueError:
        return None
    reset_s = parse_reset(reset) if reset is not None else None
    return Limit(limit=max(most, left), remaining=left, reset_s=reset_s or 0.0)
