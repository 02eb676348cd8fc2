"""Runs a validated plan: each subtask as soon as its dependencies are done, independent ones concurrently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from agentmesh.v1 import common_pb2, orchestrator_pb2

Outcome: TypeAlias = common_pb2.SubtaskOutcome.ValueType
OK = common_pb2.SUBTASK_OUTCOME_OK
FAILED = common_pb2.SUBTASK_OUTCOME_FAILED
SKIPPED = common_pb2.SUBTASK_OUTCOME_SKIPPED
TIMED_OUT = common_pb2.SUBTASK_OUTCOME_TIMED_OUT
OVER_BUDGET = common_pb2.SUBTASK_OUTCOME_OVER_BUDGET


class SubtaskFailed(Exception):
    """A subtask could not be completed; ``status`` is the gRPC status name it failed with."""

    def __init__(self, message: str, status: str = "UNKNOWN", outcome: Outcome = FAILED) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class CoordinationTimeout(Exception):
    """The subtasks did not finish within the phase's timeout, and the run cannot go on without them."""


Running: TypeAlias = "dict[asyncio.Task[common_pb2.SubtaskResult], tuple[common_pb2.Subtask, float]]"
Notices: TypeAlias = "list[orchestrator_pb2.RunEvent]"
Execute = Callable[[common_pb2.Subtask, list[common_pb2.SubtaskResult]], Coroutine[Any, Any, common_pb2.SubtaskResult]]


@dataclass
class Scheduler:
    """Dispatches subtasks and reports progress as RunEvents; ``results`` holds every outcome, in any order.

    A failed subtask's dependents are skipped, the others go on; with ``fail_fast`` the first failure raises
    instead and everything still running is cancelled. When the timeout runs out, the subtasks still running
    are cancelled; with ``finish_on_timeout`` and at least one success they (and those never started) end as
    timed out and the run goes on with what is done, otherwise ``CoordinationTimeout`` is raised. Subtasks in
    ``left_out`` (id to reason) never start: they end over budget before anything else happens. Events the
    executions put in ``notices`` (a subtask queued for quota) are relayed as they come, each before its
    subtask's finish.
    """

    subtasks: Sequence[common_pb2.Subtask]
    execute: Execute
    fail_fast: bool = False
    finish_on_timeout: bool = True
    left_out: Mapping[str, str] = field(default_factory=dict)
    results: dict[str, common_pb2.SubtaskResult] = field(default_factory=dict)
    failures: dict[str, SubtaskFailed] = field(default_factory=dict)
    notices: asyncio.Queue[orchestrator_pb2.RunEvent] = field(default_factory=asyncio.Queue)

    async def run(self, timeout_s: float) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        deadline = time.monotonic() + timeout_s
        waiting = [s for s in self.subtasks if s.id not in self.left_out]
        for subtask in self.subtasks:
            if subtask.id in self.left_out:
                yield self._record_failure(
                    subtask, SubtaskFailed(self.left_out[subtask.id], "FAILED_PRECONDITION", OVER_BUDGET), 0
                )
        running: dict[asyncio.Task[common_pb2.SubtaskResult], tuple[common_pb2.Subtask, float]] = {}
        notice: asyncio.Task[orchestrator_pb2.RunEvent] = asyncio.ensure_future(self.notices.get())
        try:
            while waiting or running:
                for subtask in self._blocked(waiting):
                    waiting.remove(subtask)
                    yield self._record_failure(subtask, SubtaskFailed(self._skip_reason(subtask), outcome=SKIPPED), 0)
                # Every ready subtask is dispatched before any progress is reported: a slow reader of the
                # events must not hold back the next worker call.
                started = [self._start(subtask, running) for subtask in self._ready(waiting)]
                for subtask in started:
                    waiting.remove(subtask)
                    yield orchestrator_pb2.RunEvent(
                        subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id=subtask.id)
                    )
                if not running:
                    continue
                done, notice, relayed = await self._next(running, notice, deadline)
                for event in relayed:
                    yield event
                if done is None:
                    continue
                # Past the deadline the phase is over, even if a call ended at that instant (its own deadline,
                # which is the phase's, may fire just before our timer does).
                if not done or time.monotonic() >= deadline:
                    async for event in self._time_out(timeout_s, running, waiting):
                        yield event
                    return
                for task in done:
                    subtask, began = running.pop(task)
                    yield self._finish(task, subtask, _ms_since(began))
        finally:
            notice.cancel()
            await _cancel_all(running)

    async def _next(
        self, running: Running, notice: asyncio.Task[orchestrator_pb2.RunEvent], deadline: float
    ) -> tuple[set[asyncio.Task[common_pb2.SubtaskResult]] | None, asyncio.Task[orchestrator_pb2.RunEvent], Notices]:
        """Waits until subtasks end, notices come or the deadline passes: (the ended subtasks, or None when only
        notices came; the notice task to wait on next; the notices to relay first)."""
        waits: set[asyncio.Future[Any]] = {*running, notice}
        done, _ = await asyncio.wait(
            waits, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
        )
        relayed = []
        if notice in done:
            relayed.append(notice.result())
            notice = asyncio.ensure_future(self.notices.get())
        while not self.notices.empty():  # a subtask's notice goes before its finish
            relayed.append(self.notices.get_nowait())
        ended = {task for task in running if task in done}
        if not ended and relayed and time.monotonic() < deadline:
            return None, notice, relayed
        return ended, notice, relayed

    def _start(
        self,
        subtask: common_pb2.Subtask,
        running: dict[asyncio.Task[common_pb2.SubtaskResult], tuple[common_pb2.Subtask, float]],
    ) -> common_pb2.Subtask:
        deps = [self.results[d] for d in subtask.depends_on]
        running[asyncio.create_task(self.execute(subtask, deps))] = (subtask, time.monotonic())
        return subtask

    async def _time_out(
        self,
        timeout_s: float,
        running: dict[asyncio.Task[common_pb2.SubtaskResult], tuple[common_pb2.Subtask, float]],
        waiting: list[common_pb2.Subtask],
    ) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        """Cancels the stragglers (upstream too) before anything else happens, then ends or fails the phase."""
        unfinished = {subtask.id: _ms_since(began) for subtask, began in running.values()}
        await _cancel_all(running)
        running.clear()
        succeeded = len(self.results) - len(self.failures)
        if not self.finish_on_timeout or succeeded == 0:
            raise CoordinationTimeout(
                f"worker coordination timed out after {round(timeout_s, 2):g} s "
                f"with {len(unfinished) + len(waiting)} of {len(self.subtasks)} subtasks unfinished"
            )
        why = f"did not finish within the coordination budget of {round(timeout_s, 2):g} s"
        for subtask_id, elapsed_ms in unfinished.items():
            subtask = next(s for s in self.subtasks if s.id == subtask_id)
            yield self._record_failure(subtask, SubtaskFailed(f"{why}; cancelled", outcome=TIMED_OUT), elapsed_ms)
        for subtask in list(waiting):
            waiting.remove(subtask)
            yield self._record_failure(subtask, SubtaskFailed(f"{why}; never started", outcome=TIMED_OUT), 0)

    def _ready(self, waiting: Sequence[common_pb2.Subtask]) -> list[common_pb2.Subtask]:
        return [s for s in waiting if all(d in self.results and d not in self.failures for d in s.depends_on)]

    def _blocked(self, waiting: Sequence[common_pb2.Subtask]) -> list[common_pb2.Subtask]:
        return [s for s in waiting if any(d in self.failures for d in s.depends_on)]

    def _skip_reason(self, subtask: common_pb2.Subtask) -> str:
        failed = [d for d in subtask.depends_on if d in self.failures]
        return f"skipped because {', '.join(failed)} did not succeed"

    def _finish(
        self, task: asyncio.Task[common_pb2.SubtaskResult], subtask: common_pb2.Subtask, duration_ms: int
    ) -> orchestrator_pb2.RunEvent:
        error = task.exception()
        if isinstance(error, SubtaskFailed):
            if self.fail_fast:
                raise SubtaskFailed(f"{subtask.id}: {error}", error.status) from None
            return self._record_failure(subtask, error, duration_ms)
        if error is not None:
            raise error
        result = task.result()
        result.outcome = OK
        self.results[subtask.id] = result
        return orchestrator_pb2.RunEvent(
            subtask_finished=orchestrator_pb2.SubtaskFinished(
                subtask_id=subtask.id,
                duration_ms=duration_ms,
                usage=result.usage,
                outcome=OK,
                queued_ms=result.queued_ms,
                tool_calls=result.tool_calls,
                tool_loop_end=result.tool_loop_end,
            )
        )

    def _record_failure(
        self, subtask: common_pb2.Subtask, failure: SubtaskFailed, duration_ms: int
    ) -> orchestrator_pb2.RunEvent:
        self.failures[subtask.id] = failure
        self.results[subtask.id] = common_pb2.SubtaskResult(
            subtask_id=subtask.id, error=str(failure), duration_ms=duration_ms, outcome=failure.outcome
        )
        return orchestrator_pb2.RunEvent(
            subtask_finished=orchestrator_pb2.SubtaskFinished(
                subtask_id=subtask.id, duration_ms=duration_ms, error=str(failure), outcome=failure.outcome
            )
        )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _cancel_all(tasks: dict[asyncio.Task[common_pb2.SubtaskResult], Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
