"""Server-sent events: framing, keep-alive comments while the run is silent, and a response that always closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def event(payload: Mapping[str, Any]) -> bytes:
    # JSON escapes newlines, so the payload is always one `data:` line.
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


async def _next(source: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return None


async def with_keepalive(source: AsyncGenerator[bytes, None], interval: float) -> AsyncGenerator[bytes, None]:
    """Relays ``source``, adding a ``: keep-alive`` comment whenever it has been silent for ``interval`` seconds.

    The next item is awaited in a task that silence never cancels, because cancelling a grpc.aio read
    cancels the whole call. Closing this generator cancels that task, which ends ``source`` where it waits.
    """
    pending: asyncio.Task[bytes | None] | None = None
    try:
        while True:
            pending = asyncio.create_task(_next(source))
            while not (await asyncio.wait({pending}, timeout=interval))[0]:
                yield KEEPALIVE
            item, pending = pending.result(), None
            if item is None:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
        await source.aclose()


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that closes its generator however the response ends.

    Starlette cancels the stream on disconnect for ASGI < 2.4 servers but only stops iterating on
    newer ones; closing explicitly runs the generator's ``finally`` (which cancels the gRPC call) in both.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None) -> None:
        # X-Accel-Buffering: nginx would otherwise buffer the stream.
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})
        self._content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._content.aclose()
