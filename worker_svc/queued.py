"""Tells the orchestrator, before the answer, that a subtask's model call waits for quota (``agentmesh.rpc.queued``);
sent at most once, when the first wait begins."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from agentmesh.rpc.queued import QUEUED_MS_METADATA, QUEUED_REASON_METADATA

logger = logging.getLogger(__name__)


def queued_notice(context: grpc.aio.ServicerContext[Any, Any]) -> Callable[[float, str], Awaitable[None]]:
    """An ``on_queued`` for ``agentmesh.llm.pacing.watch_queue`` that sends the estimate and the reason.

    Awaited in the handler's own task: grpc.aio sends a call's metadata only from there.
    """

    async def on_queued(estimate_s: float, reason: str) -> None:
        metadata = ((QUEUED_MS_METADATA, str(round(estimate_s * 1000))), (QUEUED_REASON_METADATA, _ascii(reason)))
        try:
            await context.send_initial_metadata(metadata)
        except Exception:  # its metadata has gone already: the notice is only a courtesy
            logger.debug("could not send the queued notice", exc_info=True)

    return on_queued


def _ascii(text: str) -> str:
    """Metadata values are printable ASCII."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)
