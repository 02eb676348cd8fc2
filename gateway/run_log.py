"""The one log line per request an operator reads: who, how big the plan, what it cost, where the time went."""

from __future__ import annotations

import logging
import time
from typing import Any

from agentmesh.usage import summarize
from agentmesh.v1 import common_pb2, orchestrator_pb2

logger = logging.getLogger("gateway.requests")


class RunLog:
    """Watches a run's events go by and writes ``request completed`` once it ends, however it ends."""

    def __init__(self, user: str, stream: bool) -> None:
        self._user = user
        self._stream = stream
        self._started = time.monotonic()
        self._subtasks = 0
        self._failed: list[str] = []
        self._summary: orchestrator_pb2.UsageSummary | None = None
        # What the calls seen so far cost, for a run that ends before its usage summary arrives.
        self._usages: list[common_pb2.Usage] = []
        self._done = False

    def observe(self, event: orchestrator_pb2.RunEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "plan":
            self._subtasks = len(event.plan.subtasks)
            if event.plan.HasField("usage"):
                self._usages.append(event.plan.usage)
        elif kind == "subtask_finished":
            finished = event.subtask_finished
            if finished.HasField("usage"):
                self._usages.append(finished.usage)
            if finished.error:
                self._failed.append(finished.subtask_id)
        elif kind == "usage":
            self._summary = event.usage

    def finish(self, outcome: str) -> None:
        if self._done:
            return
        self._done = True
        fields: dict[str, Any] = {
            "user": self._user,
            "outcome": outcome,
            "stream": self._stream,
            "subtasks": self._subtasks,
            "failed_subtasks": self._failed,
            "duration_ms": int((time.monotonic() - self._started) * 1000),
        }
        summary = self._summary or (summarize(self._usages) if self._usages else None)
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
