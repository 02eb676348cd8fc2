"""Runs a validated plan: each subtask as soon as its dependencies are done, independent ones concurrently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.v1 import common_pb2, orchestrator_pb2


class SubtaskFailed(Exception):
    """A subtask could not be completed; ``status`` is the gRPC status name it failed with."""

    def __init__(self, message: str, status: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.status = status


class CoordinationTimeout(Exception):
    """The subtasks did not all finish within the phase's budget."""


Execute = Callable[[common_pb2.Subtask, list[common_pb2.SubtaskResult]], Coroutine[Any, Any, common_pb2.SubtaskResult]]


@dataclass
class Scheduler:
    """Dispatches subtasks and reports progress as RunEvents; ``results`` holds every outcome, in any order.

    A failed subtask's dependents are skipped (recorded with an error), the others go on;
    with ``fail_fast`` the first failure raises instead and everything still running is cancelled.
    """

    subtasks: Sequence[common_pb2.Subtask]
    execute: Execute
    fail_fast: bool = False
    results: dict[str, common_pb2.SubtaskResult] = field(default_factory=dict)
    failures: dict[str, SubtaskFailed] = field(default_factory=dict)

    async def run(self, timeout_s: float) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        deadline = time.monotonic() + timeout_s
        waiting = list(self.subtasks)
        running: dict[asyncio.Task[common_pb2.SubtaskResult], tuple[common_pb2.Subtask, float]] = {}
        try:
            while waiting or running:
                for subtask in self._blocked(waiting):
                    waiting.remove(subtask)
                    yield self._record_failure(subtask, SubtaskFailed(self._skip_reason(subtask)), 0)
                for subtask in self._ready(waiting):
                    waiting.remove(subtask)
                    deps = [self.results[d] for d in subtask.depends_on]
                    running[asyncio.create_task(self.execute(subtask, deps))] = (subtask, time.monotonic())
                    yield orchestrator_pb2.RunEvent(
                        subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id=subtask.id)
                    )
                if not running:
                    continue
                done, _ = await asyncio.wait(
                    running, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
                )
                # Past the deadline the phase has failed, even if a call ended at that instant (its own
                # deadline, which is the phase's, may fire just before our timer does).
                if not done or time.monotonic() >= deadline:
                    unfinished = len(running) + len(waiting)
                    raise CoordinationTimeout(
                        f"worker coordination timed out after {round(timeout_s, 2):g} s "
                        f"with {unfinished} of {len(self.subtasks)} subtasks unfinished"
                    )
                for task in done:
                    subtask, started = running.pop(task)
                    yield self._finish(task, subtask, int((time.monotonic() - started) * 1000))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _ready(self, waiting: Sequence[common_pb2.Subtask]) -> list[common_pb2.Subtask]:
        return [s for s in waiting if all(d in self.results and d not in self.failures for d in s.depends_on)]

    def _blocked(self, waiting: Sequence[common_pb2.Subtask]) -> list[common_pb2.Subtask]:
        return [s for s in waiting if any(d in self.failures for d in s.depends_on)]

    def _skip_reason(self, subtask: common_pb2.Subtask) -> str:
        failed = [d for d in subtask.depends_on if d in self.failures]
        return f"skipped because {', '.join(failed)} failed"

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
        self.results[subtask.id] = result
        return orchestrator_pb2.RunEvent(
            subtask_finished=orchestrator_pb2.SubtaskFinished(
                subtask_id=subtask.id, duration_ms=duration_ms, usage=result.usage
            )
        )

    def _record_failure(
        self, subtask: common_pb2.Subtask, failure: SubtaskFailed, duration_ms: int
    ) -> orchestrator_pb2.RunEvent:
        self.failures[subtask.id] = failure
        self.results[subtask.id] = common_pb2.SubtaskResult(
            subtask_id=subtask.id, error=str(failure), duration_ms=duration_ms
        )
        return orchestrator_pb2.RunEvent(
            subtask_finished=orchestrator_pb2.SubtaskFinished(
                subtask_id=subtask.id, duration_ms=duration_ms, error=str(failure)
            )
        )
