"""A request's work raced against its client going away, before the response starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from gateway.openai.errors import CLIENT_CLOSED_REQUEST, ApiError

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Awaits ``work`` unless the client goes away first; then cancels it (and so the gRPC call).

    Starlette only notices a disconnect while it streams; before the response starts, this race
    (vLLM's ``with_cancellation``) is what stops a long run whose client has gone.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        logger.info("client closed the request (499)", extra={"status": CLIENT_CLOSED_REQUEST})
        raise ApiError(CLIENT_CLOSED_REQUEST, "client closed the request", "request_cancelled")
    return task.result()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
