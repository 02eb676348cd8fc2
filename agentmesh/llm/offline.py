"""The offline demo model: deterministic, no network, for demos and tests — it never calls an LLM.

It answers by echoing what it was asked (so the data flow through the mesh is visible), plans by
splitting the request into its lines (a line starting with "then" depends on the line before it) and, when the
plan tool offers specialists, gives the parts to them in turn (a request of fewer parts goes to each of them),
answers any other forced tool with an input its schema accepts, drives a tool loop (offered tools are each called
once, concurrently, in the first turn; the next turn answers from their results), and simulates model latency with
``OFFLINE_LATENCY_MS``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings

from agentmesh.llm.pricing import OFFLINE_MODEL
from agentmesh.llm.provider import (
    AssistantTurn,
    Completion,
    InvalidResponse,
    Message,
    Prompt,
    StreamDone,
    StreamItem,
    TextDelta,
    TokenUsage,
    Tool,
    ToolCall,
    ToolResults,
    ToolUse,
    TurnRequest,
    TurnResult,
    UserText,
)
from agentmesh.settings import SETTINGS_CONFIG, load_settings

LABEL = "[offline demo model]"
MAX_ECHO_CHARS = 4000
MAX_TOOL_CALLS = 4
MAX_TOOL_ARGUMENT_CHARS = 200
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_QUESTION_END = re.compile(r"(?<=\?)\s+")


def split_request(text: str) -> list[str]:
    """Parts of a request: its non-empty lines, or its questions when it is one line."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    parts = [line for line in lines if line]
    if len(parts) == 1:
        parts = [q.strip() for q in _QUESTION_END.split(parts[0]) if q.strip()]
    return parts or [text.strip() or "(empty request)"]


def offline_plan(text: str, max_items: int, agents: Sequence[str] = ()) -> dict[str, Any]:
    parts = split_request(text)
    if len(parts) > max_items:
        parts = [*parts[: max_items - 1], "\n".join(parts[max_items - 1 :])]
    if agents and len(parts) < len(agents):
        # Every specialist's view of the whole request: a fan-out even for a one-line question.
        parts = [f"As the team's {agent}: {text.strip()}" for agent in agents[:max_items]]
    subtasks = []
    for index, part in enumerate(parts, start=1):
        depends_on = [f"t{index - 1}"] if index > 1 and part.lower().startswith("then ") else []
        title = part if len(part) <= 60 else part[:57] + "..."
        subtask = {"id": f"t{index}", "title": title, "instruction": part, "depends_on": depends_on}
        if agents:
            subtask["agent"] = agents[(index - 1) % len(agents)]
        subtasks.append(subtask)
    return {"subtasks": subtasks}


def example_of(schema: Mapping[str, Any], text: str) -> Any:
    """A value the schema accepts, built from its common keywords (const, enum, type, properties, items,
    length and range bounds, anyOf/oneOf); strings carry ``text``, cut to fit."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_of(schema[key][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: example_of(sub, text) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = min(max(1, int(schema.get("minItems", 0))), int(schema.get("maxItems", 1)))
        return [example_of(schema.get("items", {}), text) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else schema.get("minimum", 0)
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    value = text[: int(schema.get("maxLength", MAX_ECHO_CHARS))]
    return value.ljust(int(schema.get("minLength", 0)), ".")


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def _prompt_chars(prompt: Prompt) -> int:
    return len(prompt.system) + sum(len(m.content) for m in prompt.messages)


def _last_user_text(prompt: Prompt) -> str:
    return next((m.content for m in reversed(prompt.messages) if m.role == "user"), "")


def _echo(prompt: Prompt) -> str:
    asked = _last_user_text(prompt)
    if len(asked) > MAX_ECHO_CHARS:
        asked = asked[:MAX_ECHO_CHARS] + " …"
    return f"{LABEL} No LLM was called; this is what I was asked:\n{asked}"


def _max_items(schema: Mapping[str, Any]) -> int:
    subtasks = schema.get("properties", {}).get("subtasks", {})
    return int(subtasks.get("maxItems", 8))


def _agents(schema: Mapping[str, Any]) -> list[str]:
    """The specialists the plan tool lets a subtask name (none when the team has one)."""
    subtask = schema.get("properties", {}).get("subtasks", {}).get("items", {})
    return [str(name) for name in subtask.get("properties", {}).get("agent", {}).get("enum", [])]


def _turn_chars(request: TurnRequest) -> int:
    chars = len(request.system)
    for item in request.items:
        if isinstance(item, UserText):
            chars += len(item.text)
        elif isinstance(item, AssistantTurn):
            chars += len(item.text) + sum(len(str(call.arguments)) for call in item.tool_calls)
        else:
            chars += sum(len(result.content) for result in item.results)
    return chars


def _tool_calls(request: TurnRequest) -> list[ToolUse]:
    """Each offered tool once (at most ``MAX_TOOL_CALLS``), with an input its schema accepts built from the ask."""
    asked = next((item.text for item in reversed(request.items) if isinstance(item, UserText)), "")
    calls = []
    for index, tool in enumerate(request.tools[:MAX_TOOL_CALLS], start=1):
        arguments = example_of(tool.input_schema, asked[:MAX_TOOL_ARGUMENT_CHARS])
        calls.append(ToolUse(id=f"offline_call_{index}", name=tool.name, arguments=_object(arguments)))
    return calls


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _answer_from_tools(request: TurnRequest) -> str:
    names = {
        call.id: call.name for item in request.items if isinstance(item, AssistantTurn) for call in item.tool_calls
    }
    lines = [f"{LABEL} No LLM was called; I called tools and this is what they said:"]
    for item in request.items:
        if isinstance(item, ToolResults):
            for result in item.results:
                said = (
                    result.content if len(result.content) <= MAX_ECHO_CHARS else result.content[:MAX_ECHO_CHARS] + " …"
                )
                marker = " (error)" if result.is_error else ""
                lines.append(f"- {names.get(result.call_id, result.call_id)}{marker}: {said}")
    return "\n".join(lines)


class OfflineSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    offline_latency_ms: int = Field(default=0, ge=0, le=600_000)


def create() -> OfflineProvider:
    return OfflineProvider(latency_ms=load_settings(OfflineSettings).offline_latency_ms)


class OfflineProvider:
    name = "offline"

    def __init__(self, latency_ms: int = 0) -> None:
        self._latency_s = latency_ms / 1000

    def _usage(self, prompt: Prompt, output: str) -> TokenUsage:
        return TokenUsage(
            model=OFFLINE_MODEL, input_tokens=_tokens(_prompt_chars(prompt)), output_tokens=_tokens(len(output))
        )

    async def complete(self, prompt: Prompt) -> Completion:
        await asyncio.sleep(self._latency_s)
        text = _echo(prompt)
        return Completion(text=text, usage=self._usage(prompt, text), stop_reason="stop")

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        text = _echo(prompt)
        pieces = re.findall(r"\S+\s*|\s+", text)
        # Half the latency before the first token, the rest spread over the pieces, like a real model.
        # Sleeping towards fixed instants keeps the total at the latency however slow each yield is.
        loop = asyncio.get_running_loop()
        start = loop.time()
        per_piece = self._latency_s / 2 / max(1, len(pieces))
        for index, piece in enumerate(pieces):
            await asyncio.sleep(max(0.0, start + self._latency_s / 2 + index * per_piece - loop.time()))
            yield TextDelta(piece)
        await asyncio.sleep(max(0.0, start + self._latency_s - loop.time()))
        yield StreamDone(self._usage(prompt, text), stop_reason="stop")

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        """The plan tool gets a plan from the request's lines; any other tool a minimal input its schema accepts."""
        await asyncio.sleep(self._latency_s)
        asked = _last_user_text(prompt)
        if tool.name == "plan":
            answer: Any = offline_plan(asked, _max_items(tool.input_schema), _agents(tool.input_schema))
        else:
            answer = example_of(tool.input_schema, asked)
        if not isinstance(answer, dict):
            raise InvalidResponse(f"the offline demo model cannot call {tool.name!r}: its input schema is no object")
        return ToolCall(input=answer, usage=self._usage(prompt, str(answer)), stop_reason="tool_call")

    async def turn(self, request: TurnRequest) -> TurnResult:
        """Calls the offered tools while no result is in the conversation, then answers from the results."""
        await asyncio.sleep(self._latency_s)
        used = any(isinstance(item, ToolResults) for item in request.items)
        usage_in = _tokens(_turn_chars(request))
        if request.tools and request.tool_choice == "auto" and not used:
            calls = _tool_calls(request)
            out = _tokens(sum(len(str(call.arguments)) for call in calls))
            return TurnResult(
                text="", tool_calls=calls, usage=self._turn_usage(usage_in, out), stop_reason="tool_calls"
            )
        if used:
            text = _answer_from_tools(request)
        else:
            asked = next((item.text for item in reversed(request.items) if isinstance(item, UserText)), "")
            text = _echo(Prompt(request.model, request.system, [Message("user", asked)], request.max_tokens))
        return TurnResult(
            text=text, tool_calls=[], usage=self._turn_usage(usage_in, _tokens(len(text))), stop_reason="stop"
        )

    def _turn_usage(self, input_tokens: int, output_tokens: int) -> TokenUsage:
        return TokenUsage(model=OFFLINE_MODEL, input_tokens=input_tokens, output_tokens=output_tokens)

    async def aclose(self) -> None:
        return None
