"""Auditing a capped run from the fake model API's own records: what each call cost, what it could have cost, and
what was open when each call started."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentmesh.llm.pricing import DEFAULT_PRICES, ModelPrice, PriceTable, price_for


def _price(request: Mapping[str, Any], prices: PriceTable) -> ModelPrice:
    price = price_for(request["body"]["model"], prices)
    assert price is not None, f"no price for {request['body']['model']}"
    return price


def call_cost(request: Mapping[str, Any], prices: PriceTable = DEFAULT_PRICES) -> float:
    """What the call cost, priced from the usage the fake reported."""
    price, usage = _price(request, prices), request["usage"]
    return (usage["input_tokens"] * price.input_per_mtok + usage["output_tokens"] * price.output_per_mtok) / 1e6


def worst_case(request: Mapping[str, Any], prices: PriceTable = DEFAULT_PRICES) -> float:
    """The call's cost had it written all of its max_tokens (its real input counted: ours is estimated higher)."""
    price = _price(request, prices)
    output = request["body"]["max_tokens"] * price.output_per_mtok
    return (request["usage"]["input_tokens"] * price.input_per_mtok + output) / 1e6


def open_at(upstream: list[dict[str, Any]], moment: float) -> list[dict[str, Any]]:
    """The calls that had arrived at the fake and not yet been answered at ``moment`` (by its clock)."""
    return [r for r in upstream if r["received_s"] <= moment < r["finished_s"]]


def assert_never_over(upstream: list[dict[str, Any]], cap: float, prices: PriceTable = DEFAULT_PRICES) -> None:
    """At each call's start: the calls already over at their real cost, the open ones (this one too) at their
    worst case, within the cap."""
    assert upstream and all(r["finished_s"] is not None for r in upstream)
    for call in upstream:
        start = call["received_s"]
        spent = sum(call_cost(r, prices) for r in upstream if r["finished_s"] <= start)
        held = sum(worst_case(r, prices) for r in open_at(upstream, start))
        assert spent + held <= cap + 1e-12, (call["body"]["model"], spent, held, cap)
