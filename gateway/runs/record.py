"""One run as the gateway saw it go by: the plan, each subtask on a timeline, what it cost, how it ended.

Times are milliseconds from the moment the gateway opened the run, read on the gateway's monotonic clock as the
events arrive: the orchestrator relays each event as it happens, so this is the run's own timeline, whatever the
clocks of the other processes say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agentmesh.usage import summarize
from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.openai.protocol import UnfinishedSubtask
from gateway.openai.translate import unfinished, usage_object
from gateway.runs.views import (
    Phase,
    PhaseView,
    PlanView,
    RunError,
    RunSummary,
    RunView,
    Status,
    SubtaskView,
    ToolCallView,
)


@dataclass
class _Subtask:
    subtask: common_pb2.Subtask
    started_ms: int | None = None
    finished: orchestrator_pb2.SubtaskFinished | None = None
    finished_ms: int | None = None
    queued_ms: int | None = None  # when the worker said it waits for quota
    queued_for_ms: int = 0  # its estimate of the wait; once finished, the wait it had

    def view(self, ended_ms: int | None, now_ms: int) -> SubtaskView:
        """A subtask the run ended without is ``cancelled`` (it was running) or ``not_run``; one whose worker waits
        for quota is ``queued`` until the wait it announced is over."""
        missing = unfinished(self.finished) if self.finished is not None else None
        finished_ms = self.finished_ms if self.finished is not None else ended_ms
        if self.finished is not None:
            outcome = missing.outcome if missing is not None else "ok"
        elif ended_ms is not None:
            outcome = "not_run" if self.started_ms is None else "cancelled"
        elif self.queued_ms is not None and now_ms < self.queued_ms + self.queued_for_ms:
            outcome = "queued"
        else:
            outcome = "pending" if self.started_ms is None else "running"
        return SubtaskView(
            id=self.subtask.id,
            title=self.subtask.title,
            agent=self.subtask.agent or None,
            instruction=self.subtask.instruction,
            depends_on=list(self.subtask.depends_on),
            documents=list(self.subtask.documents),
            # Skipped or never started: placed where the run gave up on it.
            started_ms=finished_ms if self.started_ms is None else self.started_ms,
            finished_ms=finished_ms,
            outcome=outcome,
            error=missing.reason if missing is not None else None,
            queued_ms=self._queued_view(),
            tool_calls=[tool_call_view(call) for call in self.finished.tool_calls] if self.finished else [],
            tool_loop_end=(self.finished.tool_loop_end or None) if self.finished else None,
        )

    def _queued_view(self) -> int | None:
        if self.finished is not None and self.finished.queued_ms:
            return self.finished.queued_ms
        return self.queued_for_ms if self.queued_ms is not None else None


def tool_call_view(call: common_pb2.ToolCallRecord) -> ToolCallView:
    return ToolCallView(
        server=call.server,
        tool=call.tool,
        duration_ms=call.duration_ms,
        outcome=call.outcome,
        result_chars=call.result_chars,
        turn=call.turn,
    )


class RunRecord:
    """Watches one run's events; ``view()`` is the run as ``/v1/runs/{id}`` shows it, at any moment."""

    def __init__(
        self,
        run_id: str,
        request_id: str,
        subject: str,
        stream: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = run_id
        self.request_id = request_id
        self.subject = subject  # hashed: records never hold user names
        self.stream = stream
        self.created = int(time.time())
        self.status: Status = "in_progress"
        self.error: RunError | None = None
        self.plan: orchestrator_pb2.Plan | None = None
        self.summary: orchestrator_pb2.UsageSummary | None = None
        self._clock = clock
        self._started = clock()
        self._planned_ms: int | None = None
        self._coordinated_ms: int | None = None
        self._ended_ms: int | None = None
        self._subtasks: dict[str, _Subtask] = {}
        self._usages: list[common_pb2.Usage] = []

    def elapsed_ms(self) -> int:
        """Milliseconds since the run started, or its whole duration once it has ended."""
        if self._ended_ms is not None:
            return self._ended_ms
        return round((self._clock() - self._started) * 1000)

    def observe(self, event: orchestrator_pb2.RunEvent) -> None:
        kind, now = event.WhichOneof("event"), self.elapsed_ms()
        if kind == "plan":
            self.plan, self._planned_ms = event.plan, now
            self._subtasks = {s.id: _Subtask(s) for s in event.plan.subtasks}
            if event.plan.HasField("usage"):
                self._usages.append(event.plan.usage)
        elif kind == "subtask_started" and (entry := self._subtasks.get(event.subtask_started.subtask_id)):
            entry.started_ms = now
        elif kind == "subtask_queued" and (entry := self._subtasks.get(event.subtask_queued.subtask_id)):
            entry.queued_ms, entry.queued_for_ms = now, event.subtask_queued.estimated_wait_ms
        elif kind == "subtask_finished" and (entry := self._subtasks.get(event.subtask_finished.subtask_id)):
            entry.finished, entry.finished_ms = event.subtask_finished, now
            if event.subtask_finished.HasField("usage"):
                self._usages.append(event.subtask_finished.usage)
            if all(s.finished is not None for s in self._subtasks.values()):
                self._coordinated_ms = now
        elif kind == "usage":
            self.summary = event.usage

    def finish(self, code: str, message: str = "") -> None:
        """Ends the record once (``code`` is ``ok`` or what went wrong); later calls change nothing."""
        if self.status != "in_progress":
            return
        self._ended_ms = self.elapsed_ms()
        if code == "ok":
            self.status = "ok"
        else:
            self.status = "error"
            self.error = RunError(phase=self.phase(), code=code.lower(), message=message or code)

    def phase(self) -> Phase:
        """Where the run is (or was when it ended): phases are read off the events, not off error messages."""
        if self.plan is None:
            return "planning"
        return "coordination" if self._coordinated_ms is None else "synthesis"

    def usage(self) -> orchestrator_pb2.UsageSummary | None:
        """The run's summary, or for a run that ended before it, what the calls seen so far cost."""
        return self.summary or (summarize(self._usages) if self._usages else None)

    def failed(self) -> list[UnfinishedSubtask]:
        entries = (unfinished(s.finished) for s in self._subtasks.values() if s.finished is not None)
        return [entry for entry in entries if entry is not None]

    def summary_view(self) -> RunSummary:
        usage = self.usage()
        return RunSummary(
            id=self.id,
            request_id=self.request_id,
            created=self.created,
            stream=self.stream,
            status=self.status,
            error=self.error,
            duration_ms=self.elapsed_ms(),
            subtasks_count=len(self._subtasks),
            cost_usd=usage.cost_usd if usage is not None and usage.fully_priced else None,
        )

    def view(self) -> RunView:
        usage = self.usage()
        plan = self.plan
        return RunView(
            **self.summary_view().model_dump(),
            subject=self.subject,
            plan=PlanView(
                fallback=plan.fallback, fallback_reason=plan.fallback_reason or None, repairs=list(plan.repairs)
            )
            if plan
            else None,
            subtasks=[entry.view(self._ended_ms, self.elapsed_ms()) for entry in self._subtasks.values()],
            phases=self._phases(),
            phases_ms=_phases_ms(self.summary) if self.summary is not None else None,
            usage=usage_object(usage, self.failed()) if usage is not None else None,
        )

    def _phases(self) -> dict[Phase, PhaseView]:
        """Each phase reached so far; one under way when the run ended ends with it."""
        phases: dict[Phase, PhaseView] = {"planning": PhaseView(started_ms=0, finished_ms=self._planned_ms)}
        if self._planned_ms is not None:
            phases["coordination"] = PhaseView(started_ms=self._planned_ms, finished_ms=self._coordinated_ms)
        if self._coordinated_ms is not None:
            phases["synthesis"] = PhaseView(started_ms=self._coordinated_ms, finished_ms=self._ended_ms)
        for phase in phases.values():
            if phase.finished_ms is None:
                phase.finished_ms = self._ended_ms
        return phases


def _phases_ms(summary: orchestrator_pb2.UsageSummary) -> dict[Phase, int]:
    durations = summary.durations
    return {
        "planning": durations.planning_ms,
        "coordination": durations.coordination_ms,
        "synthesis": durations.synthesis_ms,
    }
