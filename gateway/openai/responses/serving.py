"""Serves the Responses API: runs in the foreground (a disconnect cancels them, as in chat) or in the background
(the run goes on without the client), kept in the response store for polling, resuming and cancelling.

Beside ``ChatServing``: the same spend grant, run record, slot and outcome mapping; a response also keeps its
events, so a stream can be read again from any sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from agentmesh.read_ahead import read_ahead
from agentmesh.request_context import current_request_id, new_request_id
from agentmesh.v1 import orchestrator_pb2
from gateway.edge.request_limits import check_conversation_limits
from gateway.edge.run_slots import RunSlots
from gateway.http.disconnect import unless_disconnected
from gateway.openai import sse
from gateway.openai.errors import ApiError
from gateway.openai.outcome import outcome_of
from gateway.openai.responses import translate
from gateway.openai.responses.protocol import ResponseRequest
from gateway.openai.responses.run import ResponseRun, drive
from gateway.openai.responses.store import ResponseStore, ResponseStoreUnavailable, is_terminal
from gateway.openai.teams import TeamModels
from gateway.orchestrator_client import OrchestratorClient
from gateway.runs.history import RunHistory
from gateway.runs.log import finish_run
from gateway.settings import GatewaySettings
from gateway.spend.control import SpendControl

logger = logging.getLogger(__name__)
# Seconds before listening again for other replicas' cancels after the store failed.
FOLLOW_RETRY_S = 1.0
# Seconds a cancel waits for a run of this replica to store its output so far.
CANCEL_SETTLE_S = 1.0


def not_found(response_id: str, param: str | None = None) -> ApiError:
    """A response another subject owns, or none at all, or one expired: the same 404."""
    return ApiError(404, f"Response with id {response_id!r} not found.", "invalid_request_error", param=param,
                    code="response_not_found")  # fmt: skip


class ResponsesServing:
    """One per app, built at start-up; owns the background runs of this process."""

    def __init__(
        self,
        settings: GatewaySettings,
        orchestrator: OrchestratorClient,
        spend: SpendControl,
        runs: RunHistory,
        models: TeamModels,
        store: ResponseStore,
        slots: RunSlots,
    ) -> None:
        self._settings = settings
        self._orchestrator = orchestrator
        self._spend = spend
        self._runs = runs
        self._models = models
        self._store = store
        self._slots = slots
        self._show_progress = settings.stream_progress == "reasoning"
        self._background: dict[str, tuple[ResponseRun, asyncio.Task[None]]] = {}
        self._background_slots = RunSlots(
            settings.max_background_runs_per_user, "background responses running", "too_many_background_runs"
        )

    async def create(self, body: ResponseRequest, subject: str, request: Request) -> Response:
        run_request, turns = await self._run_request(body, subject)
        self._take_slots(body, subject)
        try:
            run = await self._open(body, subject, run_request, turns)
        except BaseException:
            self._give_back(body, subject)
            raise
        if body.background:
            return await self._start_background(run, body)
        try:
            response = await self._foreground(run, body, request)
        except BaseException:
            self._slots.give_back(subject)
            raise
        if not body.stream:
            self._slots.give_back(subject)  # a stream gives its slot back when it ends
        return response

    async def retrieve(self, subject: str, response_id: str, stream: bool, starting_after: int | None) -> Response:
        stored = await self._store.get(subject, response_id)
        if stored is None:
            raise not_found(response_id)
        if not stream:
            return JSONResponse(stored.response)
        return sse.EventStreamResponse(self._follow(subject, response_id, -1 if starting_after is None else
                                                    starting_after))  # fmt: skip

    async def cancel(self, subject: str, response_id: str) -> dict[str, Any]:
        """Idempotent: a response that has ended is returned as it is."""
        stored = await self._store.get(subject, response_id)
        if stored is None:
            raise not_found(response_id)
        if is_terminal(stored.status):
            return stored.response
        if not stored.response.get("background"):
            raise ApiError(400, "Only responses created with background: true can be cancelled.",
                           "invalid_request_error", param="response_id")  # fmt: skip
        cancelled = await self._store.cancel(subject, response_id)
        if cancelled is None:
            raise not_found(response_id)
        local = self._background.get(response_id)
        if local is None:
            return cancelled.response  # another replica runs it: the store has told it
        self._cancel_local(response_id)
        # Run here: wait (briefly) for the run to store what it had produced, and answer with that.
        await asyncio.wait({local[1]}, timeout=CANCEL_SETTLE_S)
        settled = await self._store.get(subject, response_id)
        return (settled or cancelled).response

    async def delete(self, subject: str, response_id: str) -> dict[str, Any]:
        stored = await self._store.get(subject, response_id)
        if stored is None:
            raise not_found(response_id)
        if not is_terminal(stored.status) and stored.response.get("background"):
            await self.cancel(subject, response_id)
        if not await self._store.delete(subject, response_id):
            raise not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def follow_cancels(self) -> None:
        """Cancels this replica's runs that another replica was asked to cancel (for the app's lifetime)."""
        while True:
            try:
                async for response_id in self._store.cancellations():
                    self._cancel_local(response_id)
            except Exception as exc:  # the store is down: cancels still reach runs here, and renewals see others'
                logger.warning("cannot follow cancels from other replicas: %s", exc)
                await asyncio.sleep(FOLLOW_RETRY_S)

    async def drain(self, grace_s: float) -> None:
        """Shutdown: background runs get ``grace_s`` to finish; the rest end ``failed``, saying why."""
        tasks = [task for _, task in self._background.values()]
        if not tasks:
            return
        logger.info("draining background responses", extra={"responses": len(tasks), "grace_s": grace_s})
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        self._orchestrator.end_open_runs()
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    async def _run_request(self, body: ResponseRequest, subject: str) -> tuple[orchestrator_pb2.RunRequest,
                                                                                 translate.Turns]:  # fmt: skip
        team = self._models.require(body.model)
        if body.background and not body.store:
            raise ApiError(400, "background: true requires store: true (a background response is read back from "
                           "the store)", "invalid_request_error", param="background")  # fmt: skip
        turns = translate.input_turns(body)
        if body.previous_response_id is not None:
            previous = await self._store.get(subject, body.previous_response_id)
            if previous is None:
                raise not_found(body.previous_response_id, "previous_response_id")
            if previous.turns is None:
                raise ApiError(400, f"Previous response {body.previous_response_id!r} is {previous.status}: only a "
                               "completed response can be continued.", "invalid_request_error",
                               param="previous_response_id")  # fmt: skip
            turns = [*previous.turns, *turns]
        run_request = translate.to_run_request(body.instructions, turns, body.max_output_tokens)
        run_request.team = team.name
        check_conversation_limits(
            run_request.messages, max_messages=self._settings.max_messages,
            max_total_chars=self._settings.max_total_chars,
        )  # fmt: skip
        return run_request, turns

    def _take_slots(self, body: ResponseRequest, subject: str) -> None:
        """A run slot, and a background slot for a background run: given back when the run ends."""
        if body.background:
            self._background_slots.take(subject)
        try:
            self._slots.take(subject)
        except ApiError:
            if body.background:
                self._background_slots.give_back(subject)
            raise

    def _give_back(self, body: ResponseRequest, subject: str) -> None:
        self._slots.give_back(subject)
        if body.background:
            self._background_slots.give_back(subject)

    async def _open(
        self, body: ResponseRequest, subject: str, run_request: orchestrator_pb2.RunRequest, turns: translate.Turns
    ) -> ResponseRun:
        grant = await self._spend.open(subject, body.max_cost_usd)
        run_request.max_cost_usd = grant.cost_cap_usd
        response_id = f"resp_{uuid.uuid4().hex}"
        response = translate.response_object(response_id, int(time.time()), body.model, body, grant.cost_cap_usd)
        record = self._runs.start(response_id, current_request_id() or new_request_id(), subject, body.stream)
        stream = self._spend.watch(self._orchestrator.run(run_request), grant)
        first = asyncio.ensure_future(stream.next_event())
        events = translate.ResponseEvents(response, self._show_progress)
        store = self._store if body.store else None
        return ResponseRun(subject, events, stream, grant, record, turns, store, first)

    async def _start_background(self, run: ResponseRun, body: ResponseRequest) -> Response:
        start = run.events.start()
        try:
            await self._store.create(run.subject, run.events.response, start)
        except BaseException:
            finish_run(run.record, run.subject, "error", "the response store failed")
            run.stream.cancel()
            run.first.cancel()
            self._give_back(body, run.subject)
            raise
        task = asyncio.create_task(self._in_background(run, body))
        self._background[run.response_id] = (run, task)
        if body.stream:
            return sse.EventStreamResponse(self._follow(run.subject, run.response_id, -1), run.grant.headers())
        return JSONResponse(run.events.response, headers=run.grant.headers())

    async def _in_background(self, run: ResponseRun, body: ResponseRequest) -> None:
        try:
            async with self._store.hold(run.response_id, lost=lambda: self._cancel_local(run.response_id)):
                async for _ in drive(run, self._spend):
                    pass
        except asyncio.CancelledError:
            pass  # a cancel: drive has stored the response as cancelled
        except ResponseStoreUnavailable as exc:
            logger.error("a background response could not be stored; its run was ended: %s", exc)
        finally:
            self._background.pop(run.response_id, None)
            self._give_back(body, run.subject)

    def _cancel_local(self, response_id: str) -> None:
        entry = self._background.get(response_id)
        if entry is not None:
            run, task = entry
            run.cancel_requested = True
            task.cancel()

    async def _foreground(self, run: ResponseRun, body: ResponseRequest, request: Request) -> Response:
        try:
            # As in chat: wait (briefly, when streaming) for the first event, so early failures get an HTTP status.
            wait = self._settings.stream_start_wait if body.stream else None
            await unless_disconnected(request, asyncio.wait({run.first}, timeout=wait))
            if run.first.done():
                run.first.result()
        except BaseException as exc:
            outcome = outcome_of(exc, run.grant, self._spend, streaming=False)
            finish_run(run.record, run.subject, outcome.code, outcome.message)
            run.stream.cancel()
            if outcome.error is None:
                raise
            raise outcome.error from None
        start = run.events.start()
        if run.store is not None:
            try:
                await run.store.create(run.subject, run.events.response, start)
            except BaseException:
                finish_run(run.record, run.subject, "error", "the response store failed")
                run.stream.cancel()
                raise
        if body.stream:
            return sse.EventStreamResponse(self._stream(run, start), run.grant.headers())
        await unless_disconnected(request, self._complete(run))
        if run.outcome.error is not None:
            raise run.outcome.error
        return JSONResponse(run.events.response, headers=run.grant.headers(run.stream.cost))

    async def _complete(self, run: ResponseRun) -> None:
        async with _held(run), contextlib.aclosing(drive(run, self._spend)) as batches:
            async for _ in batches:
                pass

    async def _stream(self, run: ResponseRun, start: list[dict[str, Any]]) -> AsyncGenerator[bytes, None]:
        """A foreground stream: the client's disconnect closes it, and so cancels the run upstream."""
        try:
            yield _frames(start)
            idle_after = self._settings.sse_keepalive_seconds
            async with (
                _held(run),
                contextlib.aclosing(read_ahead(drive(run, self._spend), idle_after=idle_after)) as batches,
            ):
                async for batch in batches:
                    yield _frames(event for events in batch for event in events) if batch else sse.KEEPALIVE
        finally:
            self._slots.give_back(run.subject)

    async def _follow(self, subject: str, response_id: str, after: int) -> AsyncGenerator[bytes, None]:
        """A stored response's events after ``after``, then the live ones: a client leaving stops only this."""
        idle_after = self._settings.sse_keepalive_seconds
        events = self._store.events(subject, response_id, after)
        async with contextlib.aclosing(read_ahead(events, idle_after=idle_after)) as batches:
            async for batch in batches:
                yield b"".join(_frame(event) for event in batch) if batch else sse.KEEPALIVE


def _held(run: ResponseRun) -> AbstractAsyncContextManager[None]:
    """A stored foreground response keeps this replica's claim while it runs, as a background one does (a store
    shared by replicas would otherwise fail it once its lease ran out during a long silence)."""
    if run.store is None:
        return contextlib.nullcontext()
    return run.store.hold(run.response_id, lost=lambda: None)  # its next write then finds it is no longer ours


def _frame(event: bytes) -> bytes:
    """One stored event as OpenAI sends it: its type as the SSE event name, the JSON as its data."""
    kind = json.loads(event)["type"]
    return f"event: {kind}\ndata: ".encode() + event + b"\n\n"


def _frames(events: Any) -> bytes:
    return b"".join(_frame(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()) for event in events)
