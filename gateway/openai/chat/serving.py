"""Serves chat completions: the spend grant, the run's record, the Orchestrator.Run call, and how each run ended.

vLLM's split: the router declares the route and hands each request to the one ``ChatServing`` the app built at
start-up with its collaborators.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from agentmesh import metrics
from agentmesh.read_ahead import read_ahead
from agentmesh.request_context import current_request_id, new_request_id
from agentmesh.teams.spec import Team
from agentmesh.v1 import orchestrator_pb2
from gateway.edge.request_limits import check_request_limits
from gateway.http.disconnect import unless_disconnected
from gateway.openai import sse, translate
from gateway.openai.errors import CLIENT_CLOSED_REQUEST
from gateway.openai.outcome import Outcome, outcome_of
from gateway.openai.protocol import ChatCompletionRequest
from gateway.openai.teams import TeamModels
from gateway.orchestrator_client import OrchestratorClient
from gateway.runs.history import RunHistory
from gateway.runs.log import finish_run
from gateway.runs.record import RunRecord
from gateway.settings import GatewaySettings
from gateway.spend.control import Grant, SettlingCall, SpendControl, lowered_headers

logger = logging.getLogger(__name__)


class ChatServing:
    """One per app, built at start-up: ``create`` serves one request, streamed or not."""

    def __init__(
        self,
        settings: GatewaySettings,
        orchestrator: OrchestratorClient,
        spend: SpendControl,
        runs: RunHistory,
        models: TeamModels,
    ) -> None:
        self._settings = settings
        self._models = models
        self._orchestrator = orchestrator
        self._spend = spend
        self._runs = runs
        self._show_progress = settings.stream_progress == "reasoning"

    async def create(self, body: ChatCompletionRequest, subject: str, request: Request) -> Response:
        team = self._check(body)
        run_request = translate.to_run_request(body)
        run_request.team = team.name
        grant = await self._spend.open(subject, body.max_cost_usd)
        run_request.max_cost_usd = grant.cost_cap_usd
        request_id = current_request_id() or new_request_id()
        completion_id = f"chatcmpl-{request_id}"
        created = int(time.time())
        record = self._runs.start(completion_id, request_id, subject, body.stream)
        stream = self._spend.watch(self._orchestrator.run(run_request), grant)
        first = asyncio.ensure_future(stream.next_event())
        try:
            # Wait (briefly, when streaming) for the first event before any status line, so that early failures
            # get a real HTTP status; a stream then starts at once and keeps proxies awake while the plan is made.
            wait = self._settings.stream_start_wait if body.stream else None
            await unless_disconnected(request, asyncio.wait({first}, timeout=wait))
            if first.done():
                first.result()  # raises the early failure
            events = [] if body.stream else await unless_disconnected(request, _events(first, stream, record))
        except BaseException as exc:
            outcome = self.outcome_of(exc, grant, streaming=False)
            finish_run(record, subject, outcome.code, outcome.message)
            stream.cancel()
            if outcome.error is None:
                raise
            raise outcome.error from None
        if body.stream:
            chunks = translate.ChunkStream(completion_id, created, body.model, self._show_progress, body.include_usage)
            return sse.EventStreamResponse(self._relay(stream, first, chunks, record, subject, grant), grant.headers())
        finish_run(record, subject, "ok")
        result = translate.completion(completion_id, created, body.model, events, self._show_progress)
        headers = {**grant.headers(stream.cost), **lowered_headers(result.usage)}
        return JSONResponse(result.model_dump(), headers=headers)

    def outcome_of(self, exc: BaseException, grant: Grant, *, streaming: bool) -> Outcome:
        return outcome_of(exc, grant, self._spend, streaming=streaming)

    def _check(self, body: ChatCompletionRequest) -> Team:
        """The team the request's model names (an unknown model is OpenAI's 404 ``model_not_found``)."""
        team = self._models.require(body.model)
        check_request_limits(
            body, max_messages=self._settings.max_messages, max_total_chars=self._settings.max_total_chars
        )
        return team

    async def _relay(
        self,
        stream: SettlingCall,
        first: asyncio.Future[orchestrator_pb2.RunEvent | None],
        chunks: translate.ChunkStream,
        record: RunRecord,
        subject: str,
        grant: Grant,
    ) -> AsyncGenerator[bytes, None]:
        """The SSE body: after the first byte an error becomes one error event, and [DONE] always ends it.

        Events are read ahead of the client (``read_ahead``): what arrived while the last write was going out is
        sent as one write, its text deltas as one chunk; a silence of SSE_KEEPALIVE_SECONDS sends a keep-alive.
        """
        outcome = Outcome("ok", "", None)
        metrics.streams_in_flight.inc()
        try:
            yield sse.events(chunks.start())
            idle_after = self._settings.sse_keepalive_seconds
            async with contextlib.aclosing(read_ahead(_run_events(first, stream), idle_after=idle_after)) as batches:
                async for events in batches:
                    if not events:
                        yield sse.KEEPALIVE
                        continue
                    for event in events:
                        record.observe(event)
                    if data := sse.events(c for event in translate.joined(events) for c in chunks.on_event(event)):
                        yield data  # events with nothing to show (the usage, progress when hidden) write nothing
            yield sse.events(chunks.finish())
        except (Exception, asyncio.CancelledError, GeneratorExit) as exc:
            outcome = self.outcome_of(exc, grant, streaming=True)
            if outcome.error is None:
                logger.info("client closed the stream (499)", extra={"status": CLIENT_CLOSED_REQUEST})
                raise
            if outcome.code == "error":
                logger.exception("stream failed")
            yield sse.event(outcome.error.body())
        finally:
            metrics.streams_in_flight.dec()
            finish_run(record, subject, outcome.code, outcome.message)
            stream.cancel()
            if not first.done():
                first.cancel()
        yield sse.DONE


async def _run_events(
    first: asyncio.Future[orchestrator_pb2.RunEvent | None], stream: SettlingCall
) -> AsyncIterator[orchestrator_pb2.RunEvent]:
    event = await first
    while event is not None:
        yield event
        event = await stream.next_event()


async def _events(
    first: asyncio.Future[orchestrator_pb2.RunEvent | None], stream: SettlingCall, record: RunRecord
) -> list[orchestrator_pb2.RunEvent]:
    """Every event of the run, each observed as it arrives: the run's record gets its real timeline."""
    events = []
    async for event in _run_events(first, stream):
        record.observe(event)
        events.append(event)
    return events
