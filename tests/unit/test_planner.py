"""Plan validation: what the orchestrator accepts from the model, and when it falls back."""

from __future__ import annotations

from typing import Any

import pytest

from agentmesh.errors import InvalidInput
from agentmesh.v1 import common_pb2
from orchestrator_svc.planner import (
    PlanError,
    objective_text,
    plan_from_tool_input,
    plan_tool,
    planning_prompt,
    validate_plan,
)


def _task(sid: str, deps: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": sid, "title": f"title {sid}", "instruction": f"do {sid}", "depends_on": deps or [], **extra}


def _chat(*turns: tuple[str, str]) -> list[common_pb2.ChatMessage]:
    return [common_pb2.ChatMessage(role=role, content=content) for role, content in turns]


def test_valid_plan_keeps_order_and_dependencies() -> None:
    subtasks = validate_plan({"subtasks": [_task("a"), _task("b"), _task("c", ["a", "b"])]}, max_subtasks=8)
    assert [s.id for s in subtasks] == ["a", "b", "c"]
    assert list(subtasks[2].depends_on) == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"subtasks": []}, "no subtasks"),
        ({}, "no subtasks"),
        ({"subtasks": [_task("a"), _task("a")]}, "not unique"),
        ({"subtasks": [_task("a", ["zzz"])]}, "unknown zzz"),
        ({"subtasks": [_task("a", ["a"])]}, "depends on itself"),
        ({"subtasks": [_task("a", ["b"]), _task("b", ["c"]), _task("c", ["a"])]}, "cycle among a, b, c"),
        ({"subtasks": [_task(f"t{i}") for i in range(9)]}, "more than MAX_SUBTASKS=8"),
        ({"subtasks": [{"id": "a", "instruction": "  "}]}, "no instruction"),
        ({"subtasks": [{"id": "", "instruction": "x"}]}, "no usable id"),
        ({"subtasks": [_task("a") | {"depends_on": "b"}]}, "not a list"),
        ({"subtasks": ["just a string"]}, "not an object"),
    ],
)
def test_unusable_plans_are_rejected_with_a_reason(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(PlanError, match=reason):
        validate_plan(raw, max_subtasks=8)


def test_unusable_plan_falls_back_to_one_subtask_doing_the_whole_request() -> None:
    plan = plan_from_tool_input({"subtasks": [_task("a", ["a"])]}, "the whole request", max_subtasks=8)
    assert len(plan.subtasks) == 1
    assert plan.subtasks[0].instruction == "the whole request"
    assert "depends on itself" in plan.fallback_reason


def test_a_plan_the_provider_got_without_a_tool_call_runs_and_says_how_it_was_got() -> None:
    how = "the server refused tools: planned with a JSON-schema response format"
    plan = plan_from_tool_input({"subtasks": [_task("a"), _task("b")]}, "request", max_subtasks=8, fallback_reason=how)
    assert [s.id for s in plan.subtasks] == ["a", "b"]
    assert plan.fallback_reason == how
    broken = plan_from_tool_input({"subtasks": []}, "request", max_subtasks=8, fallback_reason=how)
    assert broken.fallback_reason.startswith(f"{how}; unusable plan")


def test_missing_title_defaults_to_the_instruction() -> None:
    (subtask,) = validate_plan({"subtasks": [{"id": "a", "instruction": "compare A and B", "depends_on": []}]}, 8)
    assert subtask.title == "compare A and B"


def test_plan_tool_tells_the_model_the_cap() -> None:
    schema = plan_tool(5).input_schema
    assert schema["properties"]["subtasks"]["maxItems"] == 5


def test_planning_prompt_sends_the_conversation_as_alternating_turns() -> None:
    prompt = planning_prompt(
        _chat(("system", "be brief"), ("user", "hi"), ("user", "and more"), ("assistant", "ok"), ("user", "go")),
        model="m",
        max_tokens=100,
    )
    assert [(m.role, m.content) for m in prompt.messages] == [
        ("user", "hi\n\nand more"),
        ("assistant", "ok"),
        ("user", "go"),
    ]
    assert "be brief" in prompt.system


def test_a_conversation_must_end_with_a_user_request() -> None:
    with pytest.raises(InvalidInput, match="end with a non-empty user message"):
        objective_text(_chat(("user", "hi"), ("assistant", "hello")))
    with pytest.raises(InvalidInput):
        objective_text(_chat(("system", "only a system prompt")))


def test_objective_is_the_bare_request_for_a_single_turn_and_carries_context_otherwise() -> None:
    assert objective_text(_chat(("user", "what is 2+2?"))) == "what is 2+2?"
    objective = objective_text(_chat(("user", "I like cats"), ("assistant", "noted"), ("user", "suggest a pet")))
    assert "I like cats" in objective and objective.endswith("suggest a pet")
