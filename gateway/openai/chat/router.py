"""POST /v1/chat/completions: validate, open Orchestrator.Run, relay its events as OpenAI chunks or one completion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from agentmesh import metrics
from agentmesh.read_ahead import read_ahead
from agentmesh.request_context import current_request_id, new_request_id
from agentmesh.v1 import orchestrator_pb2
from gateway.dependencies import Orchestrator, Runs, Settings, Spend
from gateway.edge.auth import CurrentPrincipal
from gateway.edge.request_limits import check_request_limits
from gateway.http.strict_json import StrictJsonRoute
from gateway.openai import sse, translate
from gateway.openai.errors import CLIENT_CLOSED_REQUEST, ApiError, error_responses, rpc_error, shutting_down
from gateway.openai.protocol import ChatCompletion, ChatCompletionRequest
from gateway.orchestrator_client import GatewayShuttingDown
from gateway.runs.log import RunLog
from gateway.spend.control import SpendingRun

logger = logging.getLogger(__name__)
router = APIRouter(tags=["openai"], route_class=StrictJsonRoute)
T = TypeVar("T")

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "one chat.completion, or with stream: true chat.completion.chunk events ending in [DONE]",
        # One server-sent event (OpenAPI before 3.2 describes a stream by its events).
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "a chunk or an {error} as JSON, or [DONE]"}
                    },
                }
            }
        },
    },
    **error_responses(400, 404, 422, 429, 502, 503, 504),
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    principal: CurrentPrincipal,
    settings: Settings,
    orchestrator: Orchestrator,
    spend: Spend,
    runs: Runs,
) -> Response:
    if body.model != settings.service_model_name:
        raise ApiError(
            404,
            f"The model {body.model!r} does not exist; this service offers {settings.service_model_name!r}",
            "invalid_request_error",
            param="model",
            code="model_not_found",
        )
    check_request_limits(body, max_messages=settings.max_messages, max_total_chars=settings.max_total_chars)
    run_request = translate.to_run_request(body)
    grant = await spend.open(principal.subject, body.max_cost_usd)
    run_request.max_cost_usd = grant.cap
    request_id = current_request_id() or new_request_id()
    completion_id = f"chatcmpl-{request_id}"
    created = int(time.time())
    show_progress = settings.stream_progress == "reasoning"
    run_log = RunLog(principal.subject, runs.start(completion_id, request_id, principal.subject, body.stream))
    stream = spend.watch(orchestrator.run(run_request), grant)
    first = asyncio.ensure_future(stream.next_event())
    try:
        # Wait (briefly, when streaming) for the first event before any status line, so that early failures
        # get a real HTTP status; a stream then starts at once and keeps proxies awake while the plan is made.
        wait = settings.stream_start_wait if body.stream else None
        await _unless_disconnected(request, asyncio.wait({first}, timeout=wait))
        if first.done():
            first.result()  # raises the early failure
        events = [] if body.stream else await _unless_disconnected(request, _events(first, stream, run_log))
    except grpc.aio.AioRpcError as exc:
        error = spend.rpc_error(exc, grant)
        run_log.finish(exc.code().name, error.message)
        stream.cancel()
        raise error from None
    except GatewayShuttingDown:
        error = shutting_down()
        run_log.finish("shutdown", error.message)
        raise error from None
    except BaseException:
        run_log.finish("cancelled", "the client closed the request")
        stream.cancel()
        raise
    if body.stream:
        chunks = translate.ChunkStream(completion_id, created, body.model, show_progress, body.include_usage)
        relay = _relay(stream, first, chunks, run_log, settings.sse_keepalive_seconds)
        return sse.EventStreamResponse(relay, grant.headers())
    run_log.finish("ok")
    result = translate.completion(completion_id, created, body.model, events, show_progress)
    return JSONResponse(result.model_dump(), headers=grant.headers(stream.cost))


async def _relay(
    stream: SpendingRun,
    first: asyncio.Future[orchestrator_pb2.RunEvent | None],
    chunks: translate.ChunkStream,
    run_log: RunLog,
    keepalive_s: float,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: after the first byte an error becomes one error event, and [DONE] always ends it.

    Events are read ahead of the client (``read_ahead``): what arrived while the last write was going out is
    sent as one write, its text deltas as one chunk; a silence of ``keepalive_s`` sends a keep-alive comment.
    """
    outcome, message = "ok", ""
    metrics.streams_in_flight.inc()
    try:
        yield sse.events(chunks.start())
        async with contextlib.aclosing(read_ahead(_run_events(first, stream), idle_after=keepalive_s)) as batches:
            async for events in batches:
                if not events:
                    yield sse.KEEPALIVE
                    continue
                for event in events:
                    run_log.observe(event)
                if data := sse.events(chunk for event in translate.joined(events) for chunk in chunks.on_event(event)):
                    yield data  # events with nothing to show (the usage, progress when hidden) write nothing
        yield sse.events(chunks.finish())
    except grpc.aio.AioRpcError as exc:
        error = rpc_error(exc)
        outcome, message = exc.code().name, error.message
        yield sse.event(error.body())
    except GatewayShuttingDown:
        error = shutting_down()
        outcome, message = "shutdown", error.message
        yield sse.event(error.body())
    except (asyncio.CancelledError, GeneratorExit):
        outcome, message = "cancelled", "the client closed the stream"
        logger.info("client closed the stream (499)", extra={"status": CLIENT_CLOSED_REQUEST})
        raise
    except Exception:
        error = ApiError(500, "internal error while streaming", "server_error")
        outcome, message = "error", error.message
        logger.exception("stream failed")
        yield sse.event(error.body())
    finally:
        metrics.streams_in_flight.dec()
        run_log.finish(outcome, message)
        stream.cancel()
        if not first.done():
            first.cancel()
    yield sse.DONE


async def _run_events(
    first: asyncio.Future[orchestrator_pb2.RunEvent | None], stream: SpendingRun
) -> AsyncIterator[orchestrator_pb2.RunEvent]:
    event = await first
    while event is not None:
        yield event
        event = await stream.next_event()


async def _events(
    first: asyncio.Future[orchestrator_pb2.RunEvent | None], stream: SpendingRun, run_log: RunLog
) -> list[orchestrator_pb2.RunEvent]:
    """Every event of the run, each observed as it arrives: the run's record gets its real timeline."""
    events = []
    async for event in _run_events(first, stream):
        run_log.observe(event)
        events.append(event)
    return events


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
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
