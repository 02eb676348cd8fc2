"""Pricing and the run's usage summary: what the user is told a request cost."""

from __future__ import annotations

import dataclasses

import pytest

from agentmesh.llm.pricing import cost_usd, price_for
from agentmesh.llm.provider import TokenUsage
from agentmesh.usage import OutputCap, summarize, usage_message


def _priced(model: str, **tokens: int) -> TokenUsage:
    usage = TokenUsage(model=model, **tokens)
    return dataclasses.replace(usage, cost_usd=cost_usd(usage))


def test_dated_model_ids_find_their_family_price() -> None:
    assert price_for("claude-haiku-4-5-20251001") == price_for("claude-haiku-4-5")
    assert price_for("claude-haiku-4-5") is not None
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("gpt-4o-mini") is not None


def test_cache_tokens_are_priced_by_class() -> None:
    usage = TokenUsage(
        model="claude-sonnet-4-5-20250929",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    # $3 input + $15 output + 1.25 x $3 cache write + 0.1 x $3 cache read
    assert cost_usd(usage) == pytest.approx(3 + 15 + 3.75 + 0.3)


def test_openai_cached_input_has_its_own_price() -> None:
    # OpenAI's prompt_tokens include the cached ones; the provider reports them apart, as Anthropic does.
    usage = TokenUsage(
        model="gpt-4.1", input_tokens=1_000_000, output_tokens=1_000_000, cache_read_input_tokens=1_000_000
    )
    # $2 input + $8 output + $0.50 cached input
    assert cost_usd(usage) == pytest.approx(2 + 8 + 0.5)


def test_an_unknown_model_is_unpriced_not_free() -> None:
    message = usage_message("worker", _priced("mystery-model", input_tokens=10, output_tokens=5))
    assert message.priced is False
    summary = summarize([message, usage_message("worker", _priced("claude-haiku-4-5", input_tokens=10))])
    assert summary.fully_priced is False


def test_summary_merges_per_agent_and_model_in_pipeline_order() -> None:
    haiku = "claude-haiku-4-5-20251001"
    usages = [
        usage_message("synthesizer", _priced(haiku, input_tokens=100, output_tokens=50)),
        usage_message("worker", _priced(haiku, input_tokens=10, output_tokens=1)),
        usage_message("worker", _priced(haiku, input_tokens=20, output_tokens=2, cache_read_input_tokens=5)),
        usage_message("orchestrator", _priced("claude-sonnet-4-6", input_tokens=7, output_tokens=3)),
    ]
    summary = summarize(usages)
    assert [(u.agent, u.calls) for u in summary.by_agent] == [("orchestrator", 1), ("worker", 2), ("synthesizer", 1)]
    assert summary.input_tokens == 100 + 10 + 20 + 5 + 7
    assert summary.output_tokens == 50 + 1 + 2 + 3
    assert summary.cost_usd == pytest.approx(sum(u.cost_usd for u in usages))
    assert summary.fully_priced


def test_a_usage_says_what_max_tokens_it_had_what_it_was_lowered_from_and_whether_it_ran_into_it() -> None:
    haiku = "claude-haiku-4-5-20251001"
    lowered = usage_message("worker", _priced(haiku), "w", OutputCap(300, 2048), "max_tokens")
    assert (lowered.max_tokens, lowered.max_tokens_lowered_from, lowered.hit_max_tokens) == (300, 2048, True)
    kept = usage_message("worker", _priced(haiku), "w", OutputCap(2048, 2048), "end_turn")
    assert (kept.max_tokens, kept.max_tokens_lowered_from, kept.hit_max_tokens) == (2048, 0, False)
    assert usage_message("worker", _priced(haiku), stop_reason="length").hit_max_tokens  # OpenAI's word for it
    (merged,) = summarize([lowered, kept]).by_agent
    assert (merged.max_tokens, merged.max_tokens_lowered_from, merged.hit_max_tokens) == (2048, 2048, True)
