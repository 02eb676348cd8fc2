"""One response's run: the RunEvents of its Orchestrator.Run call, as Responses events, written to the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from agentmesh.v1 import orchestrator_pb2
from gateway.openai.outcome import Outcome, outcome_of
from gateway.openai.responses.store import ResponseStore
from gateway.openai.responses.translate import ResponseEvents, Turns
from gateway.runs.log import finish_run
from gateway.runs.record import RunRecord
from gateway.spend.control import Grant, SettlingCall, SpendControl

logger = logging.getLogger(__name__)
Events = list[dict[str, Any]]


class NoLongerOurs(Exception):
    """The store refused a write: the response was cancelled or deleted elsewhere, or this replica lost it."""


@dataclass
class ResponseRun:
    subject: str
    events: ResponseEvents
    stream: SettlingCall
    grant: Grant
    record: RunRecord
    turns: Turns  # the conversation this run answers (without the instructions)
    store: ResponseStore | None  # None: store false
    first: asyncio.Future[orchestrator_pb2.RunEvent | None]
    outcome: Outcome = field(default_factory=lambda: Outcome("ok", "", None))
    cancel_requested: bool = False

    @property
    def response_id(self) -> str:
        return str(self.events.response["id"])


async def drive(run: ResponseRun, spend: SpendControl) -> AsyncGenerator[Events, None]:
    """Yields each batch of events as the store has it; a failure of the run becomes ``response.failed``.

    Closing it, or cancelling the task that reads it, cancels the run upstream; a cancel asked for through the
    API leaves the response ``cancelled`` with what it had produced, a client gone from a foreground stream too.
    """
    try:
        async for event in _run_events(run):
            run.record.observe(event)
            if batch := run.events.on_event(event):
                await _write(run, batch)
                yield batch
        final = run.events.finish()
        await _write(run, final, ended=run.events.response)
        yield final
    except NoLongerOurs:
        run.outcome = Outcome("cancelled", "the response was cancelled, deleted or failed elsewhere", None)
        await _settle_cancelled(run, requested=True)  # kept only if it was cancelled
    except Exception as exc:
        run.outcome = outcome_of(exc, run.grant, spend, streaming=True)
        if run.outcome.code == "error":
            logger.exception("response run failed")
        assert run.outcome.error is not None
        code = "rate_limit_exceeded" if run.outcome.error.status == 429 else "server_error"
        failed = run.events.fail(run.outcome.error.message, code)
        try:
            await _write(run, failed, ended=run.events.response)
        except NoLongerOurs:
            return
        yield failed
    except (asyncio.CancelledError, GeneratorExit):
        why = "cancelled through the API" if run.cancel_requested else "the client closed the stream"
        run.outcome = Outcome("cancelled", why, None)
        await _settle_cancelled(run, requested=run.cancel_requested)
        raise
    finally:
        finish_run(run.record, run.subject, run.outcome.code, run.outcome.message)
        run.stream.cancel()
        if not run.first.done():
            run.first.cancel()


async def _run_events(run: ResponseRun) -> AsyncIterator[orchestrator_pb2.RunEvent]:
    event = await run.first
    while event is not None:
        yield event
        event = await run.stream.next_event()


async def _write(run: ResponseRun, events: Events, ended: dict[str, Any] | None = None) -> None:
    if run.store is None:
        return
    turns = [*run.turns, ("assistant", "".join(run.events.text))] if ended is not None else None
    if not await run.store.append(run.response_id, events, ended=ended, turns=turns):
        raise NoLongerOurs


async def _settle_cancelled(run: ResponseRun, *, requested: bool) -> None:
    """The cancelled response with its output so far: a cancel asked for leaves it for the store to take if the
    response is still cancelled; a client gone from a foreground stream ends it. Shielded: it runs while the task
    is being cancelled."""
    if run.store is None:
        return
    cancelled = run.events.cancelled()
    try:
        if requested:
            await asyncio.shield(run.store.settle_cancelled(run.response_id, cancelled))
        else:
            await asyncio.shield(run.store.append(run.response_id, [], ended=cancelled, turns=None))
    except Exception as exc:
        logger.warning("could not store a cancelled response: %s", exc)
