"""The one log line per request an operator reads: who, how big the plan, what it cost, where the time went."""

from __future__ import annotations

import logging
from typing import Any

from gateway.runs.record import RunRecord

logger = logging.getLogger("gateway.requests")


def finish_run(record: RunRecord, user: str, outcome: str, message: str = "") -> None:
    """Ends ``record`` and writes its ``request completed`` line, once, however the run ended: ``outcome`` is ``ok``
    or what ended it (a gRPC status name, ``cancelled``, ...); later calls change nothing."""
    if record.status != "in_progress":
        return
    record.finish(outcome, message)
    fields: dict[str, Any] = {
        "user": user,
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
                    **({"specialist": u.specialist} if u.specialist else {}),
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
