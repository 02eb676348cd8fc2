"""What each subject spent in the last 24 hours, in ``memory://`` (per process) or Redis (shared by replicas).

Amounts are kept per minute of a rolling day; a request reserves what it may cost into the current minute and
settles that minute to its real cost when it ends. Not the ``limits`` library's storage: it counts whole hits in
windows, while a reservation must be checked against a sum of dollars and corrected later, atomically, by every
replica; in Redis that is one Lua script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

BUCKET_S = 60
# One bucket more than a day: an amount leaves the window no sooner than 24 h after it was spent.
WINDOW_BUCKETS = 24 * 3600 // BUCKET_S
KEY_PREFIX = "agentmesh:spend:"
# The field of a subject's hash holding what runs in flight have reserved (every other field is a bucket).
HELD = "held"
# Retry-After while other runs of the subject hold the budget: what they do not spend comes back when they end.
RETRY_WHILE_HELD_S = 5
# Less than this is nothing left (floating-point residue of settled amounts), in US dollars.
MIN_GRANT_USD = 1e-9


class SpendStoreUnavailable(Exception):
    """The store could not be read or written; the gateway refuses rather than spend unmetered."""


@dataclass(frozen=True)
class Hold:
    """A reservation against a subject's day: ``reserved_usd`` in ``bucket``, ``left_usd`` of the day after it."""

    key: str
    bucket: int
    reserved_usd: float
    left_usd: float
    retry_after_s: int  # when budget may be free again: runs in flight ending, or the oldest spending leaving


class SpendStore(Protocol):
    async def reserve(self, key: str, wanted: float, limit: float) -> Hold:
        """Grants ``min(wanted, what is left of limit)`` (0 when nothing is left) in one atomic step."""
        ...

    async def settle(self, hold: Hold, cost: float) -> None:
        """Replaces the hold's amount with what the request really cost."""
        ...

    async def aclose(self) -> None: ...


def _now_bucket() -> int:
    return int(time.time()) // BUCKET_S


def _retry_after(oldest: int, held_by_others: float) -> int:
    if held_by_others > 1e-9:
        return RETRY_WHILE_HELD_S
    return max(1, (oldest + WINDOW_BUCKETS + 1) * BUCKET_S - int(time.time()))


class MemorySpendStore:
    """Per process: one gateway replica's view (use Redis to share a budget among replicas)."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, float]] = {}
        self._held: dict[str, float] = {}

    async def reserve(self, key: str, wanted: float, limit: float) -> Hold:
        now = _now_bucket()
        buckets = self._buckets.setdefault(key, {})
        for bucket in [b for b in buckets if b < now - WINDOW_BUCKETS]:
            del buckets[bucket]
        left = limit - sum(buckets.values())
        granted = min(wanted, left) if min(wanted, left) >= MIN_GRANT_USD else 0.0
        held = self._held.get(key, 0.0)
        if granted > 0:
            buckets[now] = buckets.get(now, 0.0) + granted
            self._held[key] = held + granted
        return Hold(key, now, granted, left - granted, _retry_after(min(buckets, default=now), held))

    async def settle(self, hold: Hold, cost: float) -> None:
        buckets = self._buckets.get(hold.key)
        if buckets is not None and hold.bucket in buckets:
            buckets[hold.bucket] += cost - hold.reserved_usd
        if hold.key in self._held:
            self._held[hold.key] -= hold.reserved_usd

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS[1] the subject's hash; ARGV: current bucket, window in buckets, limit, wanted, bucket seconds, least grant.
# Returns strings (a Lua number
# returned to Redis is truncated to an integer): granted, left, oldest bucket, held by runs in flight before.
_RESERVE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local spent, oldest, held = 0, now, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] == 'held' then
    held = tonumber(fields[i + 1])
  elseif tonumber(fields[i]) < now - window then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    spent = spent + tonumber(fields[i + 1])
    oldest = math.min(oldest, tonumber(fields[i]))
  end
end
local left = tonumber(ARGV[3]) - spent
local granted = math.min(tonumber(ARGV[4]), left)
if granted < tonumber(ARGV[6]) then granted = 0 end
if granted > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], string.format('%.17g', granted))
  redis.call('HINCRBYFLOAT', KEYS[1], 'held', string.format('%.17g', granted))
  redis.call('EXPIRE', KEYS[1], (window + 2) * tonumber(ARGV[5]))
end
local function s(x) return string.format('%.17g', x) end
return {s(granted), s(left - granted), tostring(oldest), s(held)}
"""


class RedisSpendStore:
    """One budget per subject for every gateway replica sharing RATE_LIMIT_STORAGE_URI."""

    def __init__(self, uri: str) -> None:
        # A slow Redis must not hold requests: fail within a second (the gateway then answers 503).
        url = uri.replace("redis+unix://", "unix://", 1)  # the limits library's name for a Unix socket
        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._reserve = self._client.register_script(_RESERVE)

    async def reserve(self, key: str, wanted: float, limit: float) -> Hold:
        now = _now_bucket()
        args: list[str | int] = [now, WINDOW_BUCKETS, repr(limit), repr(wanted), BUCKET_S, repr(MIN_GRANT_USD)]
        try:
            granted, left, oldest, held = await self._reserve(keys=[KEY_PREFIX + key], args=args)
        except RedisError as exc:
            raise SpendStoreUnavailable(str(exc)) from None
        return Hold(key, now, float(granted), float(left), _retry_after(int(oldest), float(held)))

    async def settle(self, hold: Hold, cost: float) -> None:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hincrbyfloat(KEY_PREFIX + hold.key, str(hold.bucket), cost - hold.reserved_usd)
                pipe.hincrbyfloat(KEY_PREFIX + hold.key, HELD, -hold.reserved_usd)
                await pipe.execute()
        except RedisError as exc:
            raise SpendStoreUnavailable(str(exc)) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def spend_store(uri: str) -> SpendStore:
    return MemorySpendStore() if uri.startswith("memory") else RedisSpendStore(uri)
