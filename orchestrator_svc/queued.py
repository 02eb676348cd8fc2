"""A worker's "queued for quota" notice (its Execute call's initial metadata, see ``worker_svc.queued``) as a
RunEvent, put in the run's notices while the answer is awaited."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from agentmesh.rpc.queued import QUEUED_MS_METADATA, QUEUED_REASON_METADATA
from agentmesh.v1 import orchestrator_pb2, worker_pb2


async def relay_queued(
    call: Any, subtask_id: str, notices: asyncio.Queue[orchestrator_pb2.RunEvent]
) -> worker_pb2.ExecuteResponse:
    """Awaits ``call`` (an Execute call); its notice, if any, is in ``notices`` before this returns."""
    watcher = asyncio.ensure_future(_notice(call, subtask_id, notices))
    try:
        response: worker_pb2.ExecuteResponse = await call
    finally:
        if not watcher.done():
            watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await watcher
    return response


async def _notice(call: Any, subtask_id: str, notices: asyncio.Queue[orchestrator_pb2.RunEvent]) -> None:
    metadata = dict(await call.initial_metadata() or ())
    if QUEUED_MS_METADATA not in metadata:
        return
    try:
        estimate_ms = int(metadata[QUEUED_MS_METADATA])
    except (TypeError, ValueError):
        estimate_ms = 0
    queued = orchestrator_pb2.SubtaskQueued(
        subtask_id=subtask_id,
        estimated_wait_ms=max(0, estimate_ms),
        reason=str(metadata.get(QUEUED_REASON_METADATA, "")),
    )
    notices.put_nowait(orchestrator_pb2.RunEvent(subtask_queued=queued))
