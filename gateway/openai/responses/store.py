"""Where responses and their events are kept for RESPONSE_RETENTION: the store's contract, and the in-process one.

A response is its object (JSON, rewritten when it starts and when it ends), the conversation a later
``previous_response_id`` continues, and its stream events in sequence order. Only the replica running a response
appends to it; every reader may follow its events as they come.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.edge.identity import subject_key
from gateway.openai.responses.translate import TERMINAL, Turns, ended

Clock = Callable[[], float]
# Why a response a replica was running reads failed (another replica tells, from its expired lease).
REPLICA_STOPPED = (
    "the gateway replica running this response stopped before it finished (its lease expired); "
    "create the response again"
)


class ResponseStoreUnavailable(Exception):
    """The store could not be read or written (Redis down); the client gets a 503."""


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Stored:
    """A stored response as a reader sees it: its object and, once it ended, its conversation."""

    response: dict[str, Any]
    turns: Turns | None

    @property
    def status(self) -> str:
        return str(self.response["status"])


class ResponseStore(Protocol):
    async def create(self, subject: str, response: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """Stores a new running response, owned by this replica, with its first events."""
        ...

    async def append(
        self, response_id: str, events: list[dict[str, Any]], *, ended: dict[str, Any] | None = None,
        turns: Turns | None = None,
    ) -> bool:  # fmt: skip
        """Appends events of a running response (and, with ``ended``, its final object and conversation); False
        when it is no longer this replica's to write (cancelled, deleted, expired, or its lease lost)."""
        ...

    async def get(self, subject: str, response_id: str) -> Stored | None:
        """The response if ``subject`` owns it and it has not expired (a dead replica's reads as failed)."""
        ...

    def events(self, subject: str, response_id: str, after: int) -> AsyncIterator[bytes]:
        """Its events after sequence number ``after`` (-1: all), then the live ones until it ends."""
        ...

    async def cancel(self, subject: str, response_id: str) -> Stored | None:
        """Marks a running response cancelled and tells the replica running it; a finished one is unchanged."""
        ...

    async def settle_cancelled(self, response_id: str, response: dict[str, Any]) -> None:
        """The cancelled response with what it had produced, written by the replica that ran it."""
        ...

    async def delete(self, subject: str, response_id: str) -> bool: ...

    def hold(self, response_id: str, lost: Callable[[], None]) -> AbstractAsyncContextManager[None]:
        """Keeps this replica's claim on a running response while the block runs; ``lost`` when it is gone."""
        ...

    def cancellations(self) -> AsyncIterator[str]:
        """Ids of responses other replicas cancelled, for the replica running them."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _Entry:
    owner: str
    _response: bytes
    events: list[bytes]
    turns: Turns | None = None
    expires_at: float = float("inf")
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # An ended response's object and events, compressed (its events newline-separated: compact JSON has no raw
    # newline). The Responses format repeats each item's id in every delta: a 2,000-character answer is ~35 kB.
    packed: bytes = b""

    @property
    def response(self) -> bytes:
        return zlib.decompress(self._response) if self.packed else self._response

    @response.setter
    def response(self, value: bytes) -> None:
        self._response = zlib.compress(value) if self.packed else value

    def status(self) -> str:
        return str(json.loads(self.response)["status"])

    def all_events(self) -> list[bytes]:
        return [event for event in zlib.decompress(self.packed).split(b"\n") if event] if self.packed else self.events

    def pack(self) -> None:
        self.packed, self.events = zlib.compress(b"\n".join(self.events)), []
        self._response = zlib.compress(self._response)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryResponseStore:
    """Per process (``memory://``): running responses, and ended ones until RESPONSE_RETENTION after they ended.

    Events are kept as their JSON bytes, an ended response's compressed: a stored response costs about what its
    events weigh compressed (docs/responses.md has the measured figure).
    """

    def __init__(self, retention_s: float, clock: Clock = time.monotonic) -> None:
        self._retention_s = retention_s
        self._clock = clock
        self._running: dict[str, _Entry] = {}
        self._ended: OrderedDict[str, _Entry] = OrderedDict()  # oldest end first

    def __len__(self) -> int:
        self._expire()
        return len(self._running) + len(self._ended)

    async def create(self, subject: str, response: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self._expire()
        self._running[response["id"]] = _Entry(subject_key(subject), dumps(response), [dumps(e) for e in events])

    async def append(
        self, response_id: str, events: list[dict[str, Any]], *, ended: dict[str, Any] | None = None,
        turns: Turns | None = None,
    ) -> bool:  # fmt: skip
        entry = self._running.get(response_id)
        if entry is None:
            return False
        entry.events.extend(dumps(event) for event in events)
        if ended is not None:
            entry.response, entry.turns = dumps(ended), turns
            self._end(response_id, entry)
        entry.notify()
        return True

    async def get(self, subject: str, response_id: str) -> Stored | None:
        entry = self._entry(subject, response_id)
        return None if entry is None else Stored(json.loads(entry.response), entry.turns)

    async def events(self, subject: str, response_id: str, after: int) -> AsyncIterator[bytes]:
        entry = self._entry(subject, response_id)
        if entry is None:
            return
        sent = max(after + 1, 0)
        while True:
            changed, running = entry.changed, response_id in self._running
            events = entry.all_events()
            for event in events[sent:]:
                yield event
            sent = max(sent, len(events))
            if not running:
                return
            await changed.wait()

    async def cancel(self, subject: str, response_id: str) -> Stored | None:
        entry = self._entry(subject, response_id)
        if entry is None:
            return None
        if response_id in self._running:
            entry.response = dumps(ended(json.loads(entry.response), "cancelled"))
            self._end(response_id, entry)
            entry.notify()
        return Stored(json.loads(entry.response), entry.turns)

    async def settle_cancelled(self, response_id: str, response: dict[str, Any]) -> None:
        entry = self._ended.get(response_id)
        if entry is not None and entry.status() == "cancelled":
            entry.response = dumps(response)

    async def delete(self, subject: str, response_id: str) -> bool:
        entry = self._entry(subject, response_id)
        if entry is None:
            return False
        self._running.pop(response_id, None)
        self._ended.pop(response_id, None)
        entry.notify()
        return True

    @asynccontextmanager
    async def hold(self, response_id: str, lost: Callable[[], None]) -> AsyncIterator[None]:
        yield  # one process: the claim lasts as long as the process, and cancel reaches the run directly

    async def cancellations(self) -> AsyncIterator[str]:
        await asyncio.Event().wait()  # nothing comes from elsewhere
        yield ""

    async def aclose(self) -> None:
        self._running.clear()
        self._ended.clear()

    def _entry(self, subject: str, response_id: str) -> _Entry | None:
        self._expire()
        entry = self._running.get(response_id) or self._ended.get(response_id)
        return entry if entry is not None and entry.owner == subject_key(subject) else None

    def _end(self, response_id: str, entry: _Entry) -> None:
        self._running.pop(response_id, None)
        entry.expires_at = self._clock() + self._retention_s
        entry.pack()
        self._ended[response_id] = entry

    def _expire(self) -> None:
        now = self._clock()
        while self._ended:
            response_id, entry = next(iter(self._ended.items()))
            if entry.expires_at > now:
                return
            del self._ended[response_id]
            entry.notify()


def is_terminal(status: str) -> bool:
    return status in TERMINAL
