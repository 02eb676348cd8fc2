"""Turns one call's token counts into the contract's Usage, and many Usages into a run's summary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentmesh.llm.provider import TokenUsage
from agentmesh.v1 import common_pb2, orchestrator_pb2

AGENT_ORDER = ("orchestrator", "worker", "synthesizer")
# Why a call stopped, in each API's words, when it reached its max_tokens (Anthropic's stop_reason, OpenAI's
# finish_reason).
_MAX_TOKENS_STOPS = frozenset({"max_tokens", "length"})


def stopped_at_max_tokens(stop_reason: str | None) -> bool:
    return stop_reason in _MAX_TOKENS_STOPS


@dataclass(frozen=True)
class OutputCap:
    """The max_tokens a call was given, and the configured one it was lowered from to fit a cost cap (0: not)."""

    max_tokens: int
    configured: int

    @property
    def lowered_from(self) -> int:
        return self.configured if self.max_tokens < self.configured else 0


def usage_message(
    agent: str,
    usage: TokenUsage,
    specialist: str = "",
    cap: OutputCap | None = None,
    stop_reason: str | None = None,
) -> common_pb2.Usage:
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
        max_tokens=cap.max_tokens if cap else 0,
        max_tokens_lowered_from=cap.lowered_from if cap else 0,
        hit_max_tokens=stopped_at_max_tokens(stop_reason),
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
        entry.max_tokens = max(entry.max_tokens, usage.max_tokens)
        entry.max_tokens_lowered_from = max(entry.max_tokens_lowered_from, usage.max_tokens_lowered_from)
        entry.hit_max_tokens = entry.hit_max_tokens or usage.hit_max_tokens
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
