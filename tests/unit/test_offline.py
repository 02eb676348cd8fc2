"""The offline demo model: labelled, deterministic, plans by splitting the request."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema
import pytest

from agentmesh.llm.offline import LABEL, OfflineProvider, offline_plan, split_request
from agentmesh.llm.pricing import OFFLINE_MODEL
from agentmesh.llm.provider import (
    AssistantTurn,
    Message,
    Prompt,
    StreamDone,
    TextDelta,
    Tool,
    ToolResult,
    ToolResults,
    TurnRequest,
    UserText,
)
from orchestrator_svc.planner import plan_tool, validate_plan


def _prompt(text: str) -> Prompt:
    return Prompt(model="any", system="sys", messages=[Message(role="user", content=text)], max_tokens=100)


def test_requests_split_into_lines_or_questions() -> None:
    assert split_request("- first\n\n2. second\n* third") == ["first", "second", "third"]
    assert split_request("What is A? What is B?") == ["What is A?", "What is B?"]
    assert split_request("Explain X. Be brief.") == ["Explain X. Be brief."]


def test_then_makes_a_part_depend_on_the_previous_one_and_the_cap_merges_the_tail() -> None:
    plan = offline_plan("a\nthen b\nc\nd", max_items=3)
    subtasks = plan["subtasks"]
    assert [s["depends_on"] for s in subtasks] == [[], ["t1"], []]
    assert subtasks[2]["instruction"] == "c\nd"


def test_offline_plan_passes_the_orchestrators_validation() -> None:
    raw = offline_plan("\n".join(f"line {i}" for i in range(40)), max_items=32)
    assert len(validate_plan(raw, max_subtasks=32)) == 32


async def test_answers_are_labelled_and_deterministic() -> None:
    provider = OfflineProvider()
    first = await provider.complete(_prompt("hello"))
    second = await provider.complete(_prompt("hello"))
    assert first == second
    assert first.text.startswith(LABEL) and "hello" in first.text
    assert first.usage.model == OFFLINE_MODEL and first.usage.input_tokens > 0


async def test_stream_is_the_same_text_in_pieces_then_usage() -> None:
    provider = OfflineProvider()
    items = [item async for item in provider.stream(_prompt("a b c d"))]
    assert isinstance(items[-1], StreamDone)
    deltas = [i.text for i in items[:-1] if isinstance(i, TextDelta)]
    assert len(deltas) == len(items) - 1 > 3
    assert "".join(deltas) == (await provider.complete(_prompt("a b c d"))).text


async def test_plan_tool_call_uses_the_schema_cap() -> None:
    call = await OfflineProvider().call_tool(_prompt("a\nb\nc"), plan_tool(2))
    assert [s["id"] for s in call.input["subtasks"]] == ["t1", "t2"]


TOOL_SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 3, "maxLength": 10},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "units": {"enum": ["metric", "imperial"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "detail": {"type": ["null", "boolean"]},
            "score": {"type": "number", "exclusiveMinimum": 0},
            "kind": {"const": "forecast"},
            "where": {"anyOf": [{"type": "object", "properties": {"lat": {"type": "number"}}}, {"type": "null"}]},
        },
        "required": ["city", "days", "units", "tags", "detail", "score", "kind", "where"],
    },
    {"type": "object", "properties": {}},
]


@pytest.mark.parametrize("schema", TOOL_SCHEMAS)
async def test_any_forced_tool_gets_an_input_its_schema_accepts(schema: dict[str, Any]) -> None:
    tool = Tool(name="lookup", description="look something up", input_schema=schema)
    call = await OfflineProvider().call_tool(_prompt("Lisbon weather"), tool)
    jsonschema.validate(call.input, schema)
    assert call.usage.model == OFFLINE_MODEL


LOOKUP = Tool(
    name="docs__lookup",
    description="look a topic up",
    input_schema={
        "type": "object",
        "properties": {"topic": {"type": "string", "maxLength": 20}},
        "required": ["topic"],
    },
)
CLOCK = Tool(name="time__now", description="the time", input_schema={"type": "object", "properties": {}})


async def test_offered_tools_are_called_together_then_the_answer_quotes_their_results() -> None:
    provider = OfflineProvider()
    asked = TurnRequest(
        model="any", system="sys", items=[UserText("What is MCP?")], max_tokens=100, tools=[LOOKUP, CLOCK]
    )

    first = await provider.turn(asked)

    assert first.text == "" and [(c.name, c.arguments) for c in first.tool_calls] == [
        ("docs__lookup", {"topic": "What is MCP?"}),
        ("time__now", {}),
    ]
    assert len({c.id for c in first.tool_calls}) == 2
    results = ToolResults(
        [ToolResult(first.tool_calls[0].id, "an open protocol"), ToolResult(first.tool_calls[1].id, "boom", True)]
    )
    second = await provider.turn(
        dataclasses.replace(asked, items=[*asked.items, AssistantTurn("", first.tool_calls), results])
    )

    assert second.tool_calls == [] and second.text.startswith(LABEL)
    assert "docs__lookup: an open protocol" in second.text and "time__now (error): boom" in second.text


async def test_without_tools_or_with_tool_choice_none_a_turn_echoes() -> None:
    provider = OfflineProvider()
    request = TurnRequest(
        model="any", system="", items=[UserText("hi")], max_tokens=100, tools=[LOOKUP], tool_choice="none"
    )
    result = await provider.turn(request)
    assert result.tool_calls == [] and result.text.startswith(LABEL) and "hi" in result.text
