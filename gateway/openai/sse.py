"""Server-sent events: framing, and a response that always closes its body."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def event(payload: Mapping[str, Any]) -> bytes:
    # JSON escapes newlines, so the payload is always one `data:` line.
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def events(payloads: Iterable[Mapping[str, Any]]) -> bytes:
    """Several events as one write."""
    return b"".join(event(payload) for payload in payloads)


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
