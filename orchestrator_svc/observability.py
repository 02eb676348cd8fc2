"""What one run reports to operators: phase timings, plan and subtask metrics, and its spans."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace

from agentmesh import metrics
from agentmesh.usage import outcome_name
from agentmesh.v1 import common_pb2, orchestrator_pb2

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("agentmesh.orchestrator")


@dataclass
class PhaseRecorder:
    """Times the phases of one run and counts its plan and subtasks."""

    durations_ms: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[trace.Span]:
        """Times a phase (planning, coordination, synthesis) and wraps it in a span of that name."""
        started = time.monotonic()
        with tracer.start_as_current_span(name) as span:
            try:
                yield span
            finally:
                self.durations_ms[name] = int((time.monotonic() - started) * 1000)

    def planned(self, plan: orchestrator_pb2.Plan) -> None:
        metrics.plan_size.observe(len(plan.subtasks))
        if plan.fallback:
            metrics.plan_fallbacks.inc()

    @staticmethod
    def subtask_finished(finished: orchestrator_pb2.SubtaskFinished) -> None:
        """Counts every subtask by outcome, and says out loud which did not succeed and why."""
        outcome = outcome_name(finished.outcome)
        metrics.subtasks.labels(outcome).inc()
        if finished.outcome != common_pb2.SUBTASK_OUTCOME_OK:
            logger.warning(
                "subtask %s %s: %s",
                finished.subtask_id,
                outcome,
                finished.error,
                extra={"subtask_id": finished.subtask_id, "outcome": outcome, "reason": finished.error},
            )

    def durations(self) -> orchestrator_pb2.PhaseDurations:
        return orchestrator_pb2.PhaseDurations(
            planning_ms=self.durations_ms.get("planning", 0),
            coordination_ms=self.durations_ms.get("coordination", 0),
            synthesis_ms=self.durations_ms.get("synthesis", 0),
        )


@contextmanager
def subtask_span(subtask: common_pb2.Subtask) -> Iterator[trace.Span]:
    """One span per subtask, parent of its Execute call, so a slow worker stands out in the trace."""
    attributes = {
        "agentmesh.subtask_id": subtask.id,
        "agentmesh.depends_on": list(subtask.depends_on),
        "agentmesh.specialist": subtask.agent,
    }
    with tracer.start_as_current_span("subtask", attributes=attributes) as span:
        yield span
