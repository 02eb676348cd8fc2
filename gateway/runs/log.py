"""The one log line per request an operator reads: who, how big the plan, what it cost, where the time went."""

from __future__ import annotations

import logging
from typing import Any

from agentmesh.v1 import orchestrator_pb2
from gateway.runs.record import RunRecord

logger = logging.getLogger("gateway.requests")


class RunLog:
    """Watches a run's events go by, keeping its record, and writes ``request completed`` once it ends, however
    it ends."""

    def __init__(self, user: str, record: RunRecord) -> None:
        self._user = user
        self.record = record

    def observe(self, event: orchestrator_pb2.RunEvent) -> None:
        self.record.observe(event)

    def finish(self, outcome: str, message: str = "") -> None:
        """``outcome`` is ``ok`` or what ended the run (a gRPC status name, ``cancelled``, ...); once only."""
        record = self.record
        if record.status != "in_progress":
            return
        record.finish(outcome, message)
        fields: dict[str, Any] = {
            "user": self._user,
            "outcome": outcome,
            "stream": record.stream,
            "subtasks": len(record.plan.subtasks) if record.plan is not None else 0,
            "failed_subtasks": [failed.id for failed in record.failed()],
            "duration_ms": record.elapsed_ms(),
        }
        summary = record.usage()
        if summary is not None:
            fields |= {
                "input_tokens": summary.input_tokens,
                "output_tokens": summary.output_tokens,
                "cost_usd": summary.cost_usd if summary.fully_priced else None,
                "agents": [
                    {
                        "agent": u.agent,
                        "model": u.model,
                        "calls": u.calls,
                        "input_tokens": u.input_tokens,
                        "output_tokens": u.output_tokens,
                        "cost_usd": u.cost_usd if u.priced else None,
                    }
                    for u in summary.by_agent
                ],
                "phases_ms": {
                    "planning": summary.durations.planning_ms,
                    "coordination": summary.durations.coordination_ms,
                    "synthesis": summary.durations.synthesis_ms,
                },
            }
        logger.info("request completed", extra=fields)
