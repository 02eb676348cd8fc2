"""Turns one call's token counts into the contract's Usage, and many Usages into a run's summary."""

from __future__ import annotations

from collections.abc import Iterable

from agentmesh.llm.provider import TokenUsage
from agentmesh.v1 import common_pb2, orchestrator_pb2

AGENT_ORDER = ("orchestrator", "worker", "synthesizer")


def usage_message(agent: str, usage: TokenUsage, specialist: str = "") -> common_pb2.Usage:
    cost = usage.cost_usd
    return common_pb2.Usage(
        agent=agent,
        specialist=specialist,
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens,
        cache_read_input_tokens=usage.cache_read_input_tokens,
        cost_usd=cost or 0.0,
        priced=cost is not None,
        calls=1,
    )


def summarize(usages: Iterable[common_pb2.Usage]) -> orchestrator_pb2.UsageSummary:
    """One entry per (agent, specialist, model), agents in pipeline order; totals count cache tokens as input."""
    merged: dict[tuple[str, str, str], common_pb2.Usage] = {}
    for usage in usages:
        key = (usage.agent, usage.specialist, usage.model)
        if key not in merged:
            merged[key] = common_pb2.Usage(
                agent=usage.agent, specialist=usage.specialist, model=usage.model, priced=True
            )
        entry = merged[key]
        entry.input_tokens += usage.input_tokens
        entry.output_tokens += usage.output_tokens
        entry.cache_creation_input_tokens += usage.cache_creation_input_tokens
        entry.cache_read_input_tokens += usage.cache_read_input_tokens
        entry.cost_usd += usage.cost_usd
        entry.priced = entry.priced and usage.priced
        entry.calls += usage.calls
    by_agent = sorted(
        merged.values(),
        key=lambda u: (
            AGENT_ORDER.index(u.agent) if u.agent in AGENT_ORDER else len(AGENT_ORDER),
            u.specialist,
            u.model,
        ),
    )
    return orchestrator_pb2.UsageSummary(
        by_agent=by_agent,
        input_tokens=sum(u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens for u in by_agent),
        output_tokens=sum(u.output_tokens for u in by_agent),
        cost_usd=sum(u.cost_usd for u in by_agent if u.priced),
        fully_priced=all(u.priced for u in by_agent),
    )


def outcome_name(outcome: common_pb2.SubtaskOutcome.ValueType) -> str:
    """``ok``, ``failed``, ``skipped``, ``timed_out``, ``over_budget``: the contract's enum without its prefix."""
    return common_pb2.SubtaskOutcome.Name(outcome).removeprefix("SUBTASK_OUTCOME_").lower()
