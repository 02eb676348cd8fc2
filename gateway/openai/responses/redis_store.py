"""The Redis response store (``RESPONSES_STORE_URI=redis://…``): every gateway replica polls, resumes and cancels
any response, whichever replica runs it.

Per response, a hash ``agentmesh:resp:<id>`` (owner subject, status, object, conversation, the running replica
and its lease) and a stream ``…:events`` whose entry ``<n>-0`` is the event of sequence number n-1; both expire
RESPONSE_RETENTION after the last write. The running replica renews its lease every LEASE_RENEW_S; a reader that
finds a running response whose lease has run out marks it failed (one script: only if still unclaimed), so a
response whose replica died reads ``failed`` within LEASE_S + LEASE_RENEW_S, never ``in_progress`` forever.
Cancels travel on a pub/sub channel to the replica running the response (and its next renewal would see them).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as redis

from gateway.edge.identity import subject_key
from gateway.openai.responses.store import REPLICA_STOPPED, ResponseStoreUnavailable, Stored, dumps, is_terminal
from gateway.openai.responses.translate import Turns, ended

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

PREFIX = "agentmesh:resp:"
CANCEL_CHANNEL = "agentmesh:resp:cancel"
LEASE_S = 6.0
LEASE_RENEW_S = 2.0
# How long a follower blocks on the stream before it looks at the response's state (and its lease) again.
FOLLOW_BLOCK_MS = 1000
REDIS_TIMEOUT_S = 5.0
_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

# KEYS: hash, stream. ARGV: owner, ttl ms, lease ms, status|'', response|'', turns|'', then stream id, event ...
_APPEND = (
    _NOW_MS
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
for i = 7, #ARGV, 2 do redis.call('XADD', KEYS[2], ARGV[i], 'e', ARGV[i + 1]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'status', ARGV[4], 'response', ARGV[5], 'turns', ARGV[6]) end
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
)
# KEYS: hash, stream. ARGV: ttl ms, the failed response. Fails a running response whose lease ran out.
_EXPIRE_LEASE = (
    _NOW_MS
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'lease_until')) >= now then return 0 end
local n = redis.call('XLEN', KEYS[2])
local event = '{"type":"response.failed","sequence_number":' .. n .. ',"response":' .. ARGV[2] .. '}'
redis.call('XADD', KEYS[2], (n + 1) .. '-0', 'e', event)
redis.call('HSET', KEYS[1], 'status', 'failed', 'response', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""
)
# KEYS: hash, stream. ARGV: ttl ms, the cancelled response, the channel. 1 when it was running.
_CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'response', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], KEYS[1])
return 1
"""
# KEYS: hash. ARGV: owner, lease ms. The status, after renewing the lease when it is still this replica's.
_RENEW = (
    _NOW_MS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'in_progress' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[2]))
end
return status
"""
)
# KEYS: hash. ARGV: response. Only a still-cancelled response takes the runner's final cancelled object.
_SETTLE_CANCELLED = """
if redis.call('HGET', KEYS[1], 'status') == 'cancelled' then redis.call('HSET', KEYS[1], 'response', ARGV[1]) end
return 0
"""


def _mapped(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis failures become the store's own error, once, here."""

    @functools.wraps(method)
    async def mapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except redis.RedisError as exc:
            raise ResponseStoreUnavailable(str(exc)) from None

    return mapped


def _keys(response_id: str) -> tuple[str, str]:
    return f"{PREFIX}{response_id}", f"{PREFIX}{response_id}:events"


class RedisResponseStore:
    def __init__(self, uri: str, retention_s: float) -> None:
        # A Redis that hangs fails the request (503) instead of holding it; a stream's read blocks for less.
        self._redis = redis.Redis.from_url(uri, socket_connect_timeout=2.0, socket_timeout=REDIS_TIMEOUT_S)
        # Waiting for cancels is idle for as long as nobody cancels: no read timeout there.
        self._listener = redis.Redis.from_url(uri, socket_connect_timeout=2.0)
        self._ttl_ms = max(1, int(retention_s * 1000))
        # This replica, as the owner of the responses it runs.
        self._replica = uuid.uuid4().hex
        self._append = self._redis.register_script(_APPEND)
        self._expire_lease = self._redis.register_script(_EXPIRE_LEASE)
        self._cancel = self._redis.register_script(_CANCEL)
        self._renew = self._redis.register_script(_RENEW)
        self._settle_cancelled = self._redis.register_script(_SETTLE_CANCELLED)

    @_mapped
    async def create(self, subject: str, response: dict[str, Any], events: list[dict[str, Any]]) -> None:
        hash_key, stream_key = _keys(response["id"])
        lease_until_ms = int((await self._server_time_s() + LEASE_S) * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(hash_key, mapping={
                "subject": subject_key(subject), "status": "in_progress", "response": dumps(response),
                "owner": self._replica, "lease_until": lease_until_ms,
            })  # fmt: skip
            for event in events:
                pipe.xadd(stream_key, {"e": dumps(event)}, id=f"{event['sequence_number'] + 1}-0")
            pipe.pexpire(hash_key, self._ttl_ms)
            pipe.pexpire(stream_key, self._ttl_ms)
            await pipe.execute()

    async def append(
        self, response_id: str, events: list[dict[str, Any]], *, ended: dict[str, Any] | None = None,
        turns: Turns | None = None,
    ) -> bool:  # fmt: skip
        final: list[str | bytes] = [ended["status"], dumps(ended), dumps(turns)] if ended is not None else ["", "", ""]
        pairs: list[str | bytes] = []
        for event in events:
            pairs += [f"{event['sequence_number'] + 1}-0", dumps(event)]
        args = [self._replica, self._ttl_ms, int(LEASE_S * 1000), *final, *pairs]
        return bool(await self._append(keys=list(_keys(response_id)), args=args))

    @_mapped
    async def get(self, subject: str, response_id: str) -> Stored | None:
        fields = await self._fields(subject, response_id)
        if fields is None:
            return None
        turns = fields.get(b"turns")
        return Stored(json.loads(fields[b"response"]), json.loads(turns) if turns else None)

    async def events(self, subject: str, response_id: str, after: int) -> AsyncIterator[bytes]:
        try:
            async for event in self._events(subject, response_id, after):
                yield event
        except redis.RedisError as exc:
            raise ResponseStoreUnavailable(str(exc)) from None

    async def _events(self, subject: str, response_id: str, after: int) -> AsyncIterator[bytes]:
        if await self._fields(subject, response_id) is None:
            return
        last = f"{max(after + 1, 0)}-0"
        while True:
            entries = await self._read(response_id, last, block=True)
            for entry_id, event in entries:
                last = entry_id
                yield event
            if entries:
                continue
            fields = await self._checked(response_id)
            if fields is None:
                return
            if is_terminal(fields[b"status"].decode()):
                # It ended in the same script that wrote its last events: one more read gets them all.
                for _, event in await self._read(response_id, last, block=False):
                    yield event
                return

    @_mapped
    async def cancel(self, subject: str, response_id: str) -> Stored | None:
        stored = await self.get(subject, response_id)
        if stored is None or is_terminal(stored.status):
            return stored
        cancelled = ended(stored.response, "cancelled")
        await self._cancel(keys=list(_keys(response_id)), args=[self._ttl_ms, dumps(cancelled), CANCEL_CHANNEL])
        return await self.get(subject, response_id)

    @_mapped
    async def settle_cancelled(self, response_id: str, response: dict[str, Any]) -> None:
        await self._settle_cancelled(keys=[_keys(response_id)[0]], args=[dumps(response)])

    @_mapped
    async def delete(self, subject: str, response_id: str) -> bool:
        if await self._fields(subject, response_id) is None:
            return False
        return bool(await self._redis.delete(*_keys(response_id)))

    @asynccontextmanager
    async def hold(self, response_id: str, lost: Callable[[], None]) -> AsyncIterator[None]:
        renewing = asyncio.create_task(self._keep_lease(response_id, lost))
        try:
            yield
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing

    async def cancellations(self) -> AsyncIterator[str]:
        async with self._listener.pubsub() as pubsub:
            await pubsub.subscribe(CANCEL_CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield bytes(message["data"]).decode().removeprefix(PREFIX)

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._listener.aclose()

    async def _keep_lease(self, response_id: str, lost: Callable[[], None]) -> None:
        hash_key = _keys(response_id)[0]
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            try:
                status = await self._renew(keys=[hash_key], args=[self._replica, int(LEASE_S * 1000)])
            except redis.RedisError as exc:
                logger.warning("could not renew a response's lease: %s", exc, extra={"response_id": response_id})
                continue
            if status != b"in_progress":
                lost()
                return

    async def _fields(self, subject: str, response_id: str) -> dict[bytes, bytes] | None:
        """The response's hash when ``subject`` owns it."""
        fields = await self._checked(response_id)
        return fields if fields is not None and fields.get(b"subject") == subject_key(subject).encode() else None

    async def _checked(self, response_id: str) -> dict[bytes, bytes] | None:
        """The response's hash, if it exists; a running one whose lease ran out is failed first."""
        hash_key, stream_key = _keys(response_id)
        fields: dict[bytes, bytes] = cast(Any, await self._redis.hgetall(hash_key))
        if fields.get(b"status") == b"in_progress":
            failed = ended(json.loads(fields[b"response"]), "failed", REPLICA_STOPPED)
            if await self._expire_lease(keys=[hash_key, stream_key], args=[self._ttl_ms, dumps(failed)]):
                fields = cast(Any, await self._redis.hgetall(hash_key))
        return fields or None

    async def _read(self, response_id: str, last: str, *, block: bool) -> list[tuple[str, bytes]]:
        """Events after stream id ``last``: (their stream id, their JSON)."""
        stream_key = _keys(response_id)[1]
        replies: Any = await self._redis.xread({stream_key: last}, count=1000, block=FOLLOW_BLOCK_MS if block else None)
        return [(entry_id.decode(), data[b"e"]) for _, entries in replies or () for entry_id, data in entries]

    async def _server_time_s(self) -> float:
        seconds, microseconds = await self._redis.time()
        return float(seconds) + microseconds / 1e6
