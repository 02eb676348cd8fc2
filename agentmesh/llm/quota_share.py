"""What the pacers of several processes (worker replicas) learn about one key, shared through Redis.

With ``RATE_LIMIT_STORAGE_URI=redis://…`` each pacer publishes, after every answer, what it now believes of its
key (the requests left as of a wall-clock instant, the bucket's size and refill rate, a pause until some instant,
the adaptive rate), and reads the others' before each call: a 429 one replica got pauses them all, and a replica
starting late begins from what the others know instead of probing. Each replica still takes its own calls from
its own mirror of the bucket, so replicas may overlap a little; the API's headers correct them at the next answer.
Redis trouble never stops a call: the pacer goes on with what it knows alone for ``QUIET_S``, then tries again,
and says so once in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KEY_PREFIX = "agentmesh:quota:"
TTL_S = 120  # a key nobody has called for two minutes is forgotten: its numbers would be stale anyway
QUIET_S = 30.0  # after a Redis error, calls go on without it this long instead of each waiting for its timeout


@dataclass(frozen=True)
class SharedQuota:
    """One key as a pacer saw it; times are Unix seconds (processes share no monotonic clock)."""

    mode: str
    at: float
    capacity: float
    refill_per_s: float
    remaining: float
    paused_until: float
    adaptive_rate: float


class QuotaShare(Protocol):
    async def read(self, key: str) -> SharedQuota | None: ...

    async def write(self, key: str, quota: SharedQuota) -> None: ...

    async def aclose(self) -> None: ...


class RedisQuotaShare:
    """A hash per key, written whole after each answer; a slow Redis fails within half a second."""

    def __init__(self, uri: str) -> None:
        url = uri.replace("redis+unix://", "unix://", 1)  # the limits library's name for a Unix socket
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._warned = False
        self._quiet_until = 0.0

    async def read(self, key: str) -> SharedQuota | None:
        if time.monotonic() < self._quiet_until:
            return None
        try:
            raw = await self._client.hgetall(KEY_PREFIX + key)
        except RedisError as exc:
            self._trouble(exc)
            return None
        return _parse(raw)

    async def write(self, key: str, quota: SharedQuota) -> None:
        if time.monotonic() < self._quiet_until:
            return
        mapping: dict[Any, Any] = {name: str(value) for name, value in asdict(quota).items()}
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(KEY_PREFIX + key, mapping=mapping)
                pipe.expire(KEY_PREFIX + key, TTL_S)
                await pipe.execute()
        except RedisError as exc:
            self._trouble(exc)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _trouble(self, exc: RedisError) -> None:
        self._quiet_until = time.monotonic() + QUIET_S
        if not self._warned:
            self._warned = True
            logger.warning(
                "cannot share rate-limit readings through RATE_LIMIT_STORAGE_URI; pacing per process (logged once)",
                extra={"error": type(exc).__name__},
            )


def create_share(uri: str) -> QuotaShare | None:
    """Redis for a ``redis://`` (``rediss://``, ``redis+unix://``) URI; None (per process) for ``memory://``."""
    return None if uri.startswith("memory") else RedisQuotaShare(uri)


def _parse(raw: Mapping[Any, Any]) -> SharedQuota | None:
    try:
        values = {f.name: raw[f.name.encode()].decode() for f in fields(SharedQuota)}
        numbers = {name: float(value) for name, value in values.items() if name != "mode"}
        return SharedQuota(mode=values["mode"], **numbers)
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
