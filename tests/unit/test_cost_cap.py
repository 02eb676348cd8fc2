"""The cost cap's arithmetic: input bounds, the ledger's invariant, fitting a call and a plan to what is left."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from agentmesh.cost_cap import (
    OUTPUT_TOKENS_FLOOR,
    PLANNER_OUTPUT_TOKENS_FLOOR,
    BudgetExceeded,
    Ledger,
    Unpriced,
    fit_call,
    fit_turn,
    input_tokens_bound,
    turn_input_tokens_bound,
    usd_rounded_up,
    worst_case_usd,
)
from agentmesh.llm.pricing import ModelPrice, cost_usd
from agentmesh.llm.provider import (
    AssistantTurn,
    CachedPrefix,
    ConversationItem,
    Message,
    Prompt,
    TokenUsage,
    Tool,
    ToolResult,
    ToolResults,
    ToolUse,
    TurnRequest,
    UserText,
)
from agentmesh.v1 import common_pb2
from orchestrator_svc.planner import Plan
from orchestrator_svc.spend import (
    Agent,
    CostAllotter,
    SharedInputs,
    fit_plan,
    minimum_run_usd,
    worker_input_bound,
)

PRICES = {"big": ModelPrice(3.0, 15.0), "small": ModelPrice(1.0, 5.0)}
WORKER = Agent("small", PRICES["small"], 1000)
SYNTHESIZER = Agent("small", PRICES["small"], 1000)


def _prompt(text: str, max_tokens: int = 1000, model: str = "small") -> Prompt:
    return Prompt(model=model, system="be brief", messages=[Message(role="user", content=text)], max_tokens=max_tokens)


def _subtasks(count: int) -> list[common_pb2.Subtask]:
    return [common_pb2.Subtask(id=f"t{i}", title=f"part {i}", instruction=f"do part {i}") for i in range(count)]


def test_the_input_bound_counts_bytes_so_no_text_has_more_tokens() -> None:
    ascii_prompt, cjk_prompt = _prompt("a" * 400), _prompt("語" * 400)
    assert input_tokens_bound(ascii_prompt) >= 400 + len("be brief")
    assert input_tokens_bound(cjk_prompt) >= 1200  # three UTF-8 bytes each: a token per byte at most
    tool = Tool(name="plan", description="submit", input_schema={"type": "object"})
    assert input_tokens_bound(ascii_prompt, tool) > input_tokens_bound(ascii_prompt) + 346


def test_the_ledger_never_lets_spent_plus_reserved_pass_the_cap() -> None:
    ledger = Ledger(cap=1.0)
    first = ledger.reserve(0.6)
    with pytest.raises(BudgetExceeded, match=r"only \$0.400000"):
        ledger.reserve(0.5)
    first.settle(0.1)  # it cost less than its worst case: the rest is free again
    second = ledger.reserve(0.9)
    assert ledger.spent + ledger.reserved == pytest.approx(1.0)
    second.settle(None)  # unknown cost: the whole reservation counts as spent
    assert (ledger.spent, ledger.reserved) == (pytest.approx(1.0), 0.0)
    second.settle(0.0)  # settling twice changes nothing
    assert ledger.spent == pytest.approx(1.0)


def test_no_cap_reserves_anything() -> None:
    ledger = Ledger(cap=0.0)
    ledger.reserve(1e9).settle(5.0)
    assert ledger.available == float("inf")


def test_a_call_is_fitted_to_its_allotment_or_refused() -> None:
    prompt = _prompt("x" * 1000)
    full = worst_case_usd(PRICES["small"], input_tokens_bound(prompt), 1000)
    assert fit_call(prompt, PRICES, full).max_tokens == 1000
    lowered = fit_call(prompt, PRICES, full * 0.6)
    assert OUTPUT_TOKENS_FLOOR <= lowered.max_tokens < 1000
    assert worst_case_usd(PRICES["small"], input_tokens_bound(lowered), lowered.max_tokens) <= full * 0.6
    with pytest.raises(BudgetExceeded, match="does not cover"):
        fit_call(prompt, PRICES, worst_case_usd(PRICES["small"], input_tokens_bound(prompt), 10))
    with pytest.raises(Unpriced, match="has no price"):
        fit_call(_prompt("x", model="mystery"), PRICES, 1.0)


def test_a_plan_keeps_all_subtasks_with_lower_max_tokens_while_it_can() -> None:
    subtasks = _subtasks(4)
    roomy = fit_plan(1.0, "objective", subtasks, WORKER, SYNTHESIZER)
    assert (roomy.worker_tokens, roomy.left_out) == (1000, [])
    tight = fit_plan(0.03, "objective", subtasks, WORKER, SYNTHESIZER)
    assert OUTPUT_TOKENS_FLOOR <= tight.worker_tokens < 1000
    assert tight.left_out == []


def test_a_cap_as_large_as_a_float_goes_keeps_the_whole_plan_and_every_call() -> None:
    # Found by the schemathesis fuzz test: the cap over a per-token price overflowed to inf, and the run got a 500.
    fit = fit_plan(1.7e308, "objective", _subtasks(4), WORKER, SYNTHESIZER)
    assert (fit.worker_tokens, fit.left_out) == (1000, [])
    assert fit_call(_prompt("x" * 1000), PRICES, 1.7e308).max_tokens == 1000


def test_a_plan_leaves_subtasks_out_from_its_end_with_their_dependents() -> None:
    subtasks = _subtasks(3)
    subtasks.insert(1, common_pb2.Subtask(id="needs-last", instruction="x", depends_on=["t2"]))
    one = minimum_run_usd("objective", subtasks, WORKER, SYNTHESIZER)
    fit = fit_plan(one * 1.01, "objective", subtasks, WORKER, SYNTHESIZER)
    assert fit.left_out == ["needs-last", "t1", "t2"]
    with pytest.raises(BudgetExceeded, match="one subtask with the synthesis needs"):
        fit_plan(one * 0.5, "objective", subtasks, WORKER, SYNTHESIZER)


def test_a_capped_run_needs_priced_models_and_room_to_plan() -> None:
    with pytest.raises(Unpriced, match="'mystery' has no price"):
        CostAllotter.create(1.0, PRICES, worker=("mystery", 100), synthesizer=("small", 100))
    CostAllotter.create(0.0, PRICES, worker=("mystery", 100), synthesizer=("small", 100))  # no cap: nothing to price
    costs = CostAllotter.create(0.001, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    tool = Tool(name="plan", description="submit", input_schema={"type": "object"})
    planning = _prompt("question", max_tokens=2000, model="big")
    with pytest.raises(BudgetExceeded, match=r"the smallest cap this request accepts is \$0.00") as refused:
        costs.reserve_planning(planning, tool, "question")
    assert costs.ledger.reserved == 0  # refused before anything was held
    smallest = float(str(refused.value).rsplit("$", 1)[1])
    accepted = CostAllotter.create(smallest, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    _, fitted = accepted.reserve_planning(planning, tool, "question")
    assert fitted.max_tokens == PLANNER_OUTPUT_TOKENS_FLOOR


def test_the_planner_gets_the_max_tokens_that_leave_one_subtask_and_the_synthesis_their_floors() -> None:
    tool = Tool(name="plan", description="submit", input_schema={"type": "object"})
    planning = _prompt("question", max_tokens=2000, model="big")
    roomy = CostAllotter.create(1.0, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    assert roomy.reserve_planning(planning, tool, "question")[1].max_tokens == 2000
    tight = CostAllotter.create(0.01, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    held, fitted = tight.reserve_planning(planning, tool, "question")
    assert PLANNER_OUTPUT_TOKENS_FLOOR < fitted.max_tokens < 2000
    one = [common_pb2.Subtask(id="t1", title="Answer the request", instruction="question")]
    rest = minimum_run_usd("question", one, tight.worker, tight.synthesizer)
    assert held.amount + rest <= 0.01
    one_more = worst_case_usd(PRICES["big"], input_tokens_bound(planning, tool), fitted.max_tokens + 1)
    assert one_more + rest > 0.01  # the most that leaves the rest its floors


@pytest.mark.parametrize("amount", [0.0095851, 0.009585, 0.1 + 0.2, 1e-7, 0.0160461])
def test_the_smallest_cap_named_covers_the_amount_and_a_millionth_less_does_not(amount: float) -> None:
    named = float(f"{usd_rounded_up(amount):.6f}")
    assert named >= amount
    assert float(f"{named - 1e-6:.6f}") < amount  # the next cap down, as a client would write it


def test_a_plan_whose_first_subtask_does_not_fit_falls_back_to_the_one_planning_left_room_for() -> None:
    tool = Tool(name="plan", description="submit", input_schema={"type": "object"})
    planning = _prompt("question", max_tokens=2000, model="big")
    refused = CostAllotter.create(0.0001, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    with pytest.raises(BudgetExceeded) as smallest:
        refused.reserve_planning(planning, tool, "question")
    cap = float(str(smallest.value).rsplit("$", 1)[1])
    costs = CostAllotter.create(cap, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    held, _ = costs.reserve_planning(planning, tool, "question")
    held.settle(held.amount)  # planning cost all it could
    long = Plan(subtasks=[common_pb2.Subtask(id="a", title="long", instruction="x" * 5000)])
    plan, left_out = costs.fit_or_fall_back("question", long)
    assert [s.instruction for s in plan.subtasks] == ["question"] and left_out == {}
    assert plan.fallback_reason.startswith("not one subtask of the plan fits the cost cap")
    assert costs.ledger.spent + costs.ledger.reserved <= cap
    again = CostAllotter.create(cap, PRICES, worker=("small", 1000), synthesizer=("small", 1000))
    held, _ = again.reserve_planning(planning, tool, "question")
    held.settle(held.amount)
    fitting = Plan(subtasks=[common_pb2.Subtask(id="a", title="short", instruction="q")])
    assert again.fit_or_fall_back("question", fitting)[0] is fitting


def test_a_cached_prefix_is_bounded_as_written_to_the_cache_the_dearest_it_can_be() -> None:
    prefix = "p" * 10_000
    plain = Prompt(model="small", system=prefix + "\n\nrole", messages=[Message("user", "task")], max_tokens=10)
    cached = dataclasses.replace(plain, cache=CachedPrefix(chars=len(prefix), key="run"))
    # A write costs 1.25x input: the bound grows by a quarter of the prefix, so the worst case covers it.
    assert input_tokens_bound(cached) == input_tokens_bound(plain) + 2_500
    written = TokenUsage(model="small", input_tokens=10, cache_creation_input_tokens=len(prefix), output_tokens=10)
    assert cost_usd(written, PRICES) <= worst_case_usd(PRICES["small"], input_tokens_bound(cached), 10)
    assert fit_call(cached, PRICES, 1.0).cache == cached.cache  # fitting keeps the cache hint


def test_the_orchestrator_bounds_a_workers_documents_and_its_cached_prefix() -> None:
    documents = [common_pb2.Document(id="D1", name="a.md", text="x" * 4_000)]
    subtask = common_pb2.Subtask(id="t1", title="t", instruction="do it", documents=["D1"])
    bare = worker_input_bound("objective", subtask, 0)
    with_documents = worker_input_bound("objective", subtask, 0, shared=SharedInputs.of(documents, prompt_cache=False))
    cached = worker_input_bound("objective", subtask, 0, shared=SharedInputs.of(documents, prompt_cache=True))
    assert with_documents >= bare + 4_000
    assert cached > with_documents


def _turn(*items: ConversationItem, tools: Sequence[Tool] = (), max_tokens: int = 1000) -> TurnRequest:
    return TurnRequest(
        model="small", system="be brief", items=[UserText("look it up"), *items], max_tokens=max_tokens, tools=tools
    )


def test_a_turn_bound_grows_with_its_tool_calls_results_and_offered_tools() -> None:
    lookup = Tool(name="docs__lookup", description="look up", input_schema={"type": "object"})
    bare, offered = _turn(), _turn(tools=[lookup])
    assert turn_input_tokens_bound(offered) > turn_input_tokens_bound(bare) + 346
    call = AssistantTurn("", [ToolUse("c1", "docs__lookup", {"word": "語" * 100})])
    results = ToolResults([ToolResult("c1", "語" * 500, is_error=True)])
    grown = _turn(call, results, tools=[lookup])
    assert turn_input_tokens_bound(grown) >= turn_input_tokens_bound(offered) + 300 + 1500


def test_a_turn_is_fitted_to_what_is_left_or_refused() -> None:
    request = _turn(ToolResults([ToolResult("c1", "x" * 2000)]))
    full = worst_case_usd(PRICES["small"], turn_input_tokens_bound(request), 1000)
    assert fit_turn(request, PRICES, full) == request
    lowered = fit_turn(request, PRICES, full * 0.8)
    assert OUTPUT_TOKENS_FLOOR <= lowered.max_tokens < 1000 and lowered.items == request.items
    assert worst_case_usd(PRICES["small"], turn_input_tokens_bound(lowered), lowered.max_tokens) <= full * 0.8
    with pytest.raises(BudgetExceeded, match="next model turn needs at least"):
        fit_turn(request, PRICES, worst_case_usd(PRICES["small"], turn_input_tokens_bound(request), 10))


def test_a_tool_specialist_holds_several_turns_as_far_as_the_cap_has_money_left() -> None:
    costs = CostAllotter.create(1.0, PRICES, ("small", 1000), ("small", 1000))
    held = costs.ledger.reserve(0.1)
    costs.widen_for_tools(held, common_pb2.Subtask(id="t1"), max_turns=4)
    assert 0.4 < held.amount < 0.5 and costs.ledger.reserved == pytest.approx(held.amount)
    greedy = costs.ledger.reserve(0.4)
    costs.widen_for_tools(greedy, common_pb2.Subtask(id="t2"), max_turns=8)
    assert costs.ledger.spent + costs.ledger.reserved == pytest.approx(1.0)  # all that was left, never more
    greedy.settle(0.05)
    assert costs.ledger.spent == pytest.approx(0.05)
