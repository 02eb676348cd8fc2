"""The pace of one (provider, model, key) in one process: when its next call may leave, from what the API said.

Three modes. **Probing**, until the first answer: one call goes, the others wait for what it learns (a fan-out of
a hundred must not spend a hundred calls to find out the limit is ten). **Headers**: a mirror of the API's token
buckets (requests, and tokens when the API counts them), each refilled at the rate its headers imply, a little
slower (``HEADROOM``), and never fuller than the API last said; calls leave in arrival order as the buckets allow.
**Adaptive**, for servers that send no headers (vLLM, Ollama): no pacing until the first 429; then a rate that
halves on each 429 (once per pause) and grows by about one call a second per second of successes.
In every mode a 429 pauses the key for its ``retry-after`` (1 s without one): every caller waits it out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from agentmesh.deadline import remaining_s
from agentmesh.llm.provider import RateLimited
from agentmesh.llm.quota import Limit, QuotaReading
from agentmesh.llm.quota_share import SharedQuota

Mode = Literal["probing", "headers", "adaptive"]
Queued = Callable[[float, str], Awaitable[None]]
"""Told (and awaited) once per call that must wait: the estimated wait in seconds, and why, for people."""

HEADROOM = 0.95  # of a learned refill rate: arrival jitter then meets a bucket with a little left
DEFAULT_PAUSE_S = 1.0  # a 429 without retry-after
MIN_ADAPTIVE_RATE = 0.5  # calls a second, however many 429s
MAX_ADAPTIVE_RATE = 10_000.0


class NoQuotaInTime(RateLimited):
    """The call was not sent: the rate limit would not let it leave before its deadline."""

    held_back = True


@dataclass
class Bucket:
    """A token bucket: ``tokens`` may go negative, meaning calls already promised to a refill not yet come."""

    capacity: float
    refill_per_s: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = max(self.updated, now)

    def wait_s(self, cost: float, now: float) -> float:
        """How long until ``cost`` fits: 0 now, infinity when the bucket never refills."""
        self.refill(now)
        short = min(cost, self.capacity) - self.tokens
        if short <= 1e-9:  # float residue of a refill computed to the instant: it fits
            return 0.0
        return short / self.refill_per_s if self.refill_per_s > 0 else math.inf


@dataclass
class Pacer:
    """One key's pace; ``acquire`` before a call, then exactly one of ``answered`` or ``rate_limited``."""

    name: str
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    mode: Mode = "probing"
    paused_until: float = 0.0
    adaptive_rate: float = math.inf
    requests: Bucket = field(init=False)
    tokens: Bucket | None = None
    calls_admitted: int = 0
    calls_rate_limited: int = 0
    _halved_at: float = -math.inf
    _successes: deque[float] = field(default_factory=deque)
    _waiting: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.requests = Bucket(capacity=1, refill_per_s=0.0, tokens=1.0, updated=self.clock())

    async def acquire(self, cost_tokens: float = 0.0, queued: Queued | None = None) -> float:
        """Waits until a call may leave (in arrival order) and takes its share; returns the seconds waited.

        Raises ``RateLimited`` (not retryable) at once when the wait would outlast the current deadline.
        """
        started = self.clock()
        told = False
        self._waiting += 1
        try:
            if queued is not None and (self._lock.locked() or self._wait_s(cost_tokens, started) != 0):
                await queued(self._estimate_s(cost_tokens, started), self._why())
                told = True
            async with self._lock:
                while (wait := self._wait_s(cost_tokens, now := self.clock())) != 0:
                    if queued is not None and not told:
                        await queued(wait if wait is not None else 0.0, self._why())
                        told = True
                    await self._wait(wait, now)
                self._take(cost_tokens, now)
        finally:
            self._waiting -= 1
        return self.clock() - started

    def answered(self, reading: QuotaReading | None) -> None:
        """A call got an answer other than a 429; ``reading`` is its headers' (None when none was seen)."""
        now = self.clock()
        if reading is not None and reading.has_limits:
            self._learn(reading, now)
        elif reading is not None and self.mode != "headers":
            self._adapt_up(now)
        elif self.mode == "probing":  # no response at all (a connection error): let the next call probe
            self.requests.tokens = 1.0
        self._notify()

    def rate_limited(self, retry_after_s: float | None, reading: QuotaReading | None) -> None:
        """A call got a 429: everyone waits out its retry-after; without headers the rate halves."""
        now = self.clock()
        self.calls_rate_limited += 1
        pause = retry_after_s if retry_after_s is not None else DEFAULT_PAUSE_S
        self.paused_until = max(self.paused_until, now + pause)
        if reading is not None and reading.has_limits:
            self._learn(reading, now)
            self.requests.tokens = min(self.requests.tokens, 0.0)
        elif self.mode != "headers":
            self._halve(now, pause)
        self._notify()

    def snapshot(self, wall_now: float) -> SharedQuota | None:
        """What this pacer believes, for the other processes (None while it knows nothing yet)."""
        if self.mode == "probing":
            return None
        now = self.clock()
        self.requests.refill(now)
        return SharedQuota(
            mode=self.mode,
            at=wall_now,
            capacity=self.requests.capacity,
            refill_per_s=self.requests.refill_per_s,
            remaining=max(0.0, self.requests.tokens),
            paused_until=wall_now + max(0.0, self.paused_until - now),
            adaptive_rate=self.adaptive_rate,
        )

    def merge(self, shared: SharedQuota, wall_now: float) -> None:
        """Takes in what another process learned: its pause, and never more requests left than it saw."""
        now = self.clock()
        self.paused_until = max(self.paused_until, now + (shared.paused_until - wall_now))
        if shared.mode == "headers":
            since = max(0.0, wall_now - shared.at)
            left = min(shared.capacity, shared.remaining + since * shared.refill_per_s)
            if self.mode != "headers":
                self.mode = "headers"
                self.requests = Bucket(shared.capacity, shared.refill_per_s, left, now)
            else:
                self.requests.refill(now)
                self.requests.capacity = shared.capacity
                self.requests.refill_per_s = shared.refill_per_s or self.requests.refill_per_s
                self.requests.tokens = min(self.requests.tokens, left)
        elif shared.mode == "adaptive" and self.mode != "headers" and math.isfinite(shared.adaptive_rate):
            self.mode = "adaptive"
            if shared.adaptive_rate < self.adaptive_rate:
                self.adaptive_rate = shared.adaptive_rate
                tokens = min(self.requests.tokens, 1.0) if self.requests.capacity <= 1 else 0.0
                self.requests = Bucket(capacity=1, refill_per_s=shared.adaptive_rate, tokens=tokens, updated=now)
        self._notify()

    # -- inside --

    def _wait_s(self, cost_tokens: float, now: float) -> float | None:
        """0 when a call may leave now; None while a probe's answer is awaited."""
        wait = max(0.0, self.paused_until - now)
        if self.mode == "probing" and self.requests.tokens < 1:
            return None
        if self.mode == "adaptive" and math.isinf(self.adaptive_rate):
            return wait
        wait = max(wait, self.requests.wait_s(1, now))
        if self.tokens is not None and cost_tokens > 0:
            wait = max(wait, self.tokens.wait_s(cost_tokens, now))
        return wait

    def _estimate_s(self, cost_tokens: float, now: float) -> float:
        """For people: about how long a call arriving now waits, the calls before it included."""
        own = self._wait_s(cost_tokens, now) or 0.0
        rate = self.requests.refill_per_s
        ahead = max(0, self._waiting - 1) / rate if rate > 0 and math.isfinite(own) else 0.0
        return own + ahead if math.isfinite(own) else 0.0

    def _why(self) -> str:
        if self.clock() < self.paused_until:
            return f"{self.name} answered 429: paused until its retry-after"
        if self.mode == "probing":
            return f"waiting for the first answer of {self.name} to learn its rate limit"
        return f"waiting for the rate limit of {self.name}"

    async def _wait(self, wait: float | None, now: float) -> None:
        left = remaining_s()
        if left is not None and ((wait is None and left <= 0) or (wait is not None and wait >= left)):
            raise NoQuotaInTime(
                f"{self.name}: the rate limit leaves no room for this call before its deadline "
                f"({'an unknown wait' if wait is None else f'{wait:.1f} s'} needed, {max(0.0, left):.1f} s left)",
                retryable=False,
                retry_after_s=wait,
                details={"status": 429},
            )
        if wait is not None and math.isfinite(wait):
            await self.sleep(wait)
            return
        with contextlib.suppress(TimeoutError):  # past the deadline, the check above raises on the next turn
            await asyncio.wait_for(self._changed.wait(), timeout=left)

    def _take(self, cost_tokens: float, now: float) -> None:
        self.calls_admitted += 1
        self.requests.refill(now)
        self.requests.tokens -= 1
        if self.tokens is not None and cost_tokens > 0:
            self.tokens.refill(now)
            self.tokens.tokens -= min(cost_tokens, self.tokens.capacity)

    def _learn(self, reading: QuotaReading, now: float) -> None:
        first = self.mode != "headers"
        self.mode = "headers"
        self.requests = _mirror(self.requests, reading.requests, now, first) if reading.requests else self.requests
        if reading.requests is None and first:  # tokens only: requests unpaced
            self.requests = Bucket(math.inf, 0.0, math.inf, now)
        if reading.tokens is not None:
            self.tokens = _mirror(self.tokens, reading.tokens, now, first or self.tokens is None)

    def _adapt_up(self, now: float) -> None:
        if self.mode == "probing":
            self.mode = "adaptive"
        self._successes.append(now)
        while self._successes and self._successes[0] < now - 1.0:
            self._successes.popleft()
        if math.isfinite(self.adaptive_rate):
            self.adaptive_rate = min(MAX_ADAPTIVE_RATE, self.adaptive_rate + 1 / self.adaptive_rate)
            self.requests.refill(now)
            self.requests.refill_per_s = self.adaptive_rate

    def _halve(self, now: float, pause_s: float) -> None:
        """Once per pause: the 429s of calls that were in flight together are one signal, not many."""
        self.mode = "adaptive"
        if now - self._halved_at < max(pause_s, DEFAULT_PAUSE_S):
            return
        self._halved_at = now
        if math.isinf(self.adaptive_rate):  # the first 429: half of what got through in the last second
            recent = sum(1 for t in self._successes if t >= now - 1.0)
            self.adaptive_rate = max(MIN_ADAPTIVE_RATE, recent / 2)
        else:
            self.adaptive_rate = max(MIN_ADAPTIVE_RATE, self.adaptive_rate / 2)
        self.requests = Bucket(capacity=1, refill_per_s=self.adaptive_rate, tokens=0.0, updated=now)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _mirror(bucket: Bucket | None, limit: Limit, now: float, first: bool) -> Bucket:
    """The bucket after an answer: the API's capacity and rate, and never more left than it said."""
    rate = limit.refill_per_s
    if bucket is None or first:
        refill = rate * HEADROOM if rate is not None else 0.0
        return Bucket(capacity=limit.limit, refill_per_s=refill, tokens=limit.remaining, updated=now)
    bucket.refill(now)
    bucket.capacity = limit.limit
    if rate is not None:
        bucket.refill_per_s = rate * HEADROOM
    if bucket.refill_per_s > 0:
        bucket.tokens = min(bucket.tokens, limit.remaining)
    else:  # a rate not known yet (the bucket has always been full): trust what is left
        bucket.tokens = limit.remaining
    return bucket
