"""What the Toolbox hands out: a tool as the model sees it, and the outcome of one call."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["ok", "error", "timeout", "refused", "unavailable"]
# Both providers' tool names: Anthropic's tool name and OpenAI's function name.
MODEL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
SEPARATOR = "__"
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def model_name(server: str, tool: str) -> str:
    """``server__tool``, with characters the APIs refuse (MCP allows '.' and '/') as '_', cut to 64."""
    return f"{server}{SEPARATOR}{_NOT_IN_NAME.sub('_', tool)}"[:64]


@dataclass(frozen=True)
class ToolDefinition:
    server: str
    tool: str
    description: str
    # The JSON schema object of the tool's arguments, as the server lists it.
    input_schema: Mapping[str, Any]

    @property
    def model_name(self) -> str:
        """What the model sees and calls: ``f"{server}__{tool}"``, valid for both APIs."""
        return model_name(self.server, self.tool)


@dataclass(frozen=True)
class ToolOutcome:
    server: str
    tool: str
    # The result for the model, capped at MAX_TOOL_RESULT_CHARS (the cut is marked); for a failure, what went wrong.
    text: str
    # isError results, raised errors, timeouts, refusals and unavailable servers.
    is_error: bool
    outcome: Outcome
    duration_s: float
    # The result's size before capping.
    result_chars: int


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n[result cut: {limit} of {len(text)} characters shown]"
    return text[: max(0, limit - len(note))] + note
