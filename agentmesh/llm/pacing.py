"""The wrapper that paces every model call of a process per (provider, model, key), from what the API says.

The API's answer reaches the pacer without touching each call site: both SDKs send through an httpx-compatible
client (their aiohttp transport), whose response hook (``RESPONSE_HOOKS``) hands the headers to the call that is
waiting for them through a ContextVar. A caller that wants to know when its call waits for quota (the worker,
to show the subtask as queued) sets a ``QueueWatch`` around the call. The wrapper sits inside the retries, so a
retried call is paced like any other, and the retry's own wait for a ``retry-after`` runs alongside the pause
the pacer applies to everyone: the two overlap, they do not add up.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentmesh.llm.pacer import Pacer
from agentmesh.llm.provider import (
    AssistantTurn,
    ConversationItem,
    LLMProvider,
    Prompt,
    RateLimited,
    Request,
    StreamItem,
    TurnRequest,
    UserText,
    aclose_stream,
)
from agentmesh.llm.quota import QuotaReading, read_quota
from agentmesh.llm.quota_share import QuotaShare
from agentmesh.llm.wrapper import R, WrapperProvider

Key = tuple[str, str, str]
"""(provider, model, scope): the scope names the API's origin and a fingerprint of its key, never the key."""


@dataclass
class _Answer:
    reading: QuotaReading | None = None


NO_HEADERS = QuotaReading()
_answer: ContextVar[_Answer | None] = ContextVar("agentmesh_quota_answer", default=None)


class _Response(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


async def _read_headers(response: _Response) -> None:
    answer = _answer.get()
    if answer is not None:
        answer.reading = read_quota(response.headers, time.time())


RESPONSE_HOOKS: dict[str, list[Callable[[Any], Awaitable[None]]]] = {"response": [_read_headers]}
"""``event_hooks`` for an SDK's HTTP client: each response's rate-limit headers go to the pacer of its call."""


@dataclass
class QueueWatch:
    """What a caller learns of its calls' waits: ``on_queued`` when one must wait, ``waited_s`` in all."""

    on_queued: Callable[[float, str], Awaitable[None]] | None = None
    waited_s: float = 0.0
    queued: bool = False

    async def _queued(self, estimate_s: float, why: str) -> None:
        first, self.queued = not self.queued, True
        if first and self.on_queued is not None:
            await self.on_queued(estimate_s, why)


_watch: ContextVar[QueueWatch | None] = ContextVar("agentmesh_queue_watch", default=None)


@contextmanager
def watch_queue(on_queued: Callable[[float, str], Awaitable[None]] | None = None) -> Iterator[QueueWatch]:
    """Watches the waits of the model calls made in the block (in this task); ``on_queued`` is called once."""
    watch = QueueWatch(on_queued)
    token = _watch.set(watch)
    try:
        yield watch
    finally:
        _watch.reset(token)


@dataclass
class Pacers:
    """Every key's pacer in this process, shared by all the providers that call the same model with the same key;
    with a ``share`` (``agentmesh.llm.quota_share``), what they learn is shared with other processes."""

    share: QuotaShare | None = None
    by_key: dict[Key, Pacer] = field(default_factory=dict)

    def get(self, key: Key) -> Pacer:
        pacer = self.by_key.get(key)
        if pacer is None:
            pacer = self.by_key[key] = Pacer(f"{key[0]} model {key[1]}")
        return pacer


class PacingProvider(WrapperProvider):
    """Waits for quota before each call of ``inner`` and learns from each answer; ``scope`` tells keys apart."""

    def __init__(self, inner: LLMProvider, pacers: Pacers, scope: str) -> None:
        super().__init__(inner)
        self._pacers = pacers
        self._scope = scope

    def _pacer(self, prompt: Request) -> Pacer:
        return self._pacers.get((self.name, prompt.model, self._scope))

    async def _admit(self, pacer: Pacer, prompt: Request) -> None:
        share = self._pacers.share
        if share is not None and (shared := await share.read(self._share_key(prompt))) is not None:
            pacer.merge(shared, time.time())
        watch = _watch.get()
        waited = await pacer.acquire(token_cost(prompt), watch._queued if watch is not None else None)
        if watch is not None:
            watch.waited_s += waited

    def _share_key(self, prompt: Request) -> str:
        return f"{self.name}:{prompt.model}:{self._scope}"

    async def _publish(self, pacer: Pacer, prompt: Request) -> None:
        share = self._pacers.share
        if share is not None and (snapshot := pacer.snapshot(time.time())) is not None:
            await share.write(self._share_key(prompt), snapshot)

    async def around(self, prompt: Request, operation: str, call: Callable[[], Awaitable[R]]) -> R:
        pacer = self._pacer(prompt)
        await self._admit(pacer, prompt)
        answer = _Answer()
        token = _answer.set(answer)
        try:
            result = await call()
        except RateLimited as exc:
            pacer.rate_limited(exc.retry_after_s, answer.reading)
            await self._publish(pacer, prompt)
            raise
        except BaseException:
            pacer.answered(answer.reading)
            raise
        finally:
            _answer.reset(token)
        pacer.answered(answer.reading or NO_HEADERS)  # an answer whose headers were not seen tells nothing more
        await self._publish(pacer, prompt)
        return result

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        """Paced until its first item; the headers come with the response's start."""
        pacer = self._pacer(prompt)
        await self._admit(pacer, prompt)
        answer = _Answer()
        items = self.inner.stream(prompt)
        token = _answer.set(answer)
        try:
            first = await anext(items)
        except RateLimited as exc:
            pacer.rate_limited(exc.retry_after_s, answer.reading)
            await aclose_stream(items)
            await self._publish(pacer, prompt)
            raise
        except BaseException:
            pacer.answered(answer.reading)
            await aclose_stream(items)
            raise
        finally:
            _answer.reset(token)
        pacer.answered(answer.reading or NO_HEADERS)
        await self._publish(pacer, prompt)
        try:
            yield first
            async for item in items:
                yield item
        finally:
            await aclose_stream(items)


def token_cost(prompt: Request) -> float:
    """What the API counts against a tokens limit before it answers: the input (about 4 characters a token) and
    the most it may generate, as both APIs estimate it."""
    if isinstance(prompt, TurnRequest):
        chars = len(prompt.system) + sum(_item_chars(item) for item in prompt.items)
    else:
        chars = len(prompt.system) + sum(len(message.content) for message in prompt.messages)
    return chars / 4 + prompt.max_tokens


def _item_chars(item: ConversationItem) -> int:
    if isinstance(item, UserText):
        return len(item.text)
    if isinstance(item, AssistantTurn):
        return len(item.text) + sum(len(str(call.arguments)) for call in item.tool_calls)
    return sum(len(result.content) for result in item.results)
