"""The worker's bounded tool loop: model turn -> tool calls (run concurrently) -> results -> model ... -> an answer.

Bounds, each checked before a model turn starts: ``max_turns`` (the last turn is asked for a final answer without
tools, so the user gets an answer rather than an error); the subtask's cost allotment (spent so far in this
subtask + the turn's worst case must fit, max_tokens lowered down to the floor if need be; when not even the floor
fits, the loop ends ``over_budget`` with the best answer so far: a forced final turn would carry the same input,
the tools included, so it could not fit either). The same call (tool and arguments) made a third time is answered
with an error result telling the model it is looping, without calling the tool. A tool's failure is an error
result for the model (``Toolbox.call`` never raises for it). Cancellation (client gone, deadline, shutdown)
propagates from the model call or the tool calls in flight; no further turn starts.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agentmesh import deadline
from agentmesh.cost_cap import BudgetExceeded, fit_turn
from agentmesh.llm.pricing import PriceTable, cost_usd
from agentmesh.llm.provider import (
    AssistantTurn,
    ConversationItem,
    LLMProvider,
    Prompt,
    TokenUsage,
    Tool,
    ToolResult,
    ToolResults,
    ToolUse,
    TurnRequest,
    TurnResult,
    UserText,
)
from agentmesh.teams.spec import AgentSpec
from agentmesh.tools import Toolbox, ToolDefinition, ToolOutcome

LoopEnd = Literal["answered", "max_turns", "over_budget"]
# The third identical call is refused: two may be a retry after a transient failure, three is a loop.
MAX_IDENTICAL_CALLS = 2


@dataclass(frozen=True)
class CallRecord:
    """One tool call as the subtask's result lists it: never its arguments or its result's content."""

    server: str
    tool: str
    duration_s: float
    outcome: str
    result_chars: int
    turn: int


@dataclass
class LoopResult:
    """``end`` is None for a subtask of one model call without tools; ``max_tokens`` and ``stop_reason`` are those
    of its last model call (the one that wrote the answer)."""

    text: str
    usage: TokenUsage
    end: LoopEnd | None
    turns: int
    max_tokens: int
    stop_reason: str | None = None
    calls: list[CallRecord] = field(default_factory=list)


def sum_usage(a: TokenUsage | None, b: TokenUsage) -> TokenUsage:
    """Both turns' tokens; the cost is unknown (None) once one turn's is."""
    if a is None:
        return b
    cost = None if a.cost_usd is None or b.cost_usd is None else a.cost_usd + b.cost_usd
    return TokenUsage(
        model=b.model,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_creation_input_tokens=a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens=a.cache_read_input_tokens + b.cache_read_input_tokens,
        cost_usd=cost,
    )


def call_key(call: ToolUse) -> tuple[str, str]:
    return call.name, json.dumps(call.arguments, sort_keys=True, default=str)


def stopped_text(turns: int) -> str:
    return f"(No answer: the subtask's cost allotment did not cover another model turn after {turns}.)"


def looping_text(call: ToolUse) -> str:
    return (
        f"Not called: this is the third time you call {call.name} with the same arguments in this subtask, so you "
        "are looping. Use the results you already have, try something else, or give your answer."
    )


class ToolLoop:
    """Runs one subtask of a specialist that has tools; ``allotment_usd`` of 0 means no cost cap."""

    def __init__(
        self,
        provider: LLMProvider,
        toolbox: Toolbox,
        spec: AgentSpec,
        definitions: Sequence[ToolDefinition],
        prices: PriceTable,
        allotment_usd: float = 0.0,
    ) -> None:
        self._provider = provider
        self._toolbox = toolbox
        self._spec = spec
        self._prices = prices
        self._allotment = allotment_usd
        self._tools = [Tool(d.model_name, d.description, d.input_schema) for d in definitions]
        self._by_name: Mapping[str, ToolDefinition] = {d.model_name: d for d in definitions}
        self._seen: Counter[tuple[str, str]] = Counter()
        self._spent = 0.0
        self._usage: TokenUsage | None = None
        self.calls: list[CallRecord] = []

    async def run(self, prompt: Prompt) -> LoopResult:
        items: list[ConversationItem] = [UserText(message.content) for message in prompt.messages]
        best = ""
        last = TurnResult(text="", tool_calls=[], usage=TokenUsage(model=prompt.model))
        last_max_tokens = prompt.max_tokens
        max_turns = max(1, self._spec.max_turns)
        for turn in range(1, max_turns + 1):
            final = turn == max_turns
            request = TurnRequest(
                model=prompt.model,
                system=prompt.system,
                items=list(items),
                max_tokens=prompt.max_tokens,
                tools=self._tools,
                tool_choice="none" if final else "auto",
            )
            try:
                request = self._fit(request)
            except BudgetExceeded:
                if turn == 1:
                    raise  # as for a call without tools: the subtask cannot start (FAILED_PRECONDITION)
                return self._result(best or stopped_text(turn - 1), "over_budget", turn - 1, last_max_tokens, last)
            result = await self._provider.turn(request)
            self._account(result.usage)
            best, last, last_max_tokens = result.text or best, result, request.max_tokens
            if final or not result.tool_calls:
                end: LoopEnd = "max_turns" if final else "answered"
                return self._result(result.text or best, end, turn, request.max_tokens, result)
            items.append(AssistantTurn(result.text, list(result.tool_calls)))
            items.append(ToolResults(await self._run_calls(result, turn)))
        raise AssertionError("unreachable: the last turn is final")

    def _fit(self, request: TurnRequest) -> TurnRequest:
        """The turn within what is left of the allotment (raises ``BudgetExceeded`` when it cannot fit)."""
        if self._allotment <= 0:
            return request
        return fit_turn(request, self._prices, self._allotment - self._spent)

    def _account(self, usage: TokenUsage) -> None:
        self._usage = sum_usage(self._usage, usage)
        cost = usage.cost_usd if usage.cost_usd is not None else cost_usd(usage, self._prices)
        self._spent += cost or 0.0

    async def _run_calls(self, result: TurnResult, turn: int) -> list[ToolResult]:
        """Every call of the turn at once; results and records in the order the model asked for them."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._call(call, turn)) for call in result.tool_calls]
        done = [task.result() for task in tasks]
        self.calls.extend(record for _, record in done)
        return [tool_result for tool_result, _ in done]

    async def _call(self, call: ToolUse, turn: int) -> tuple[ToolResult, CallRecord]:
        key = call_key(call)
        self._seen[key] += 1
        if self._seen[key] > MAX_IDENTICAL_CALLS:
            definition = self._by_name.get(call.name)
            server, tool = (definition.server, definition.tool) if definition else ("", call.name)
            return ToolResult(call.id, looping_text(call), is_error=True), CallRecord(
                server, tool, 0.0, "looping", 0, turn
            )
        outcome: ToolOutcome = await self._toolbox.call(
            self._spec, call.name, call.arguments, self._timeout_s(), call_id=call.id
        )
        record = CallRecord(
            outcome.server, outcome.tool, outcome.duration_s, outcome.outcome, outcome.result_chars, turn
        )
        return ToolResult(call.id, outcome.text, is_error=outcome.is_error), record

    def _timeout_s(self) -> float:
        """The specialist's tool_timeout, cut to what is left of the subtask's deadline."""
        remaining = deadline.remaining_s()
        timeout = self._spec.tool_timeout_s
        return timeout if remaining is None else max(0.0, min(timeout, remaining - deadline.MARGIN_S))

    def _result(self, text: str, end: LoopEnd, turns: int, max_tokens: int, last: TurnResult) -> LoopResult:
        usage = self._usage or TokenUsage(model=self._spec.model)
        return LoopResult(text, usage, end, turns, max_tokens, last.stop_reason, list(self.calls))
