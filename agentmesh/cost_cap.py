"""A run's cost cap: worst-case bounds of model calls, and the ledger that keeps spent + reserved within the cap.

Pure (no grpc): the orchestrator keeps the ledger, the worker and synthesizer check each call against the
allotment they are given, and all of them bound a call the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from agentmesh.llm.pricing import CACHE_WRITE_MULTIPLIER, ModelPrice, PriceTable, price_for
from agentmesh.llm.provider import AssistantTurn, Prompt, Tool, ToolResults, TurnRequest, UserText

# A byte-level BPE token covers at least one byte of UTF-8 text, so a text's bytes bound its tokens. The constants
# cover what the API adds around the text: message framing, and the tool-use system prompt (346 tokens for a
# forced tool on Claude 4 models, per Anthropic's documentation).
PROMPT_OVERHEAD_TOKENS = 64
PER_MESSAGE_OVERHEAD_TOKENS = 16
TOOL_OVERHEAD_TOKENS = 512
# Trailing metadata of a failed Orchestrator.Run: what the run may have cost (held calls at their worst case), in USD.
SPENT_TRAILER = "agentmesh-spent-usd"
# Fewer output tokens than this make a call not worth starting (or the configured maximum, when that is smaller):
# 128 tokens are a short paragraph, the least a worker's part or an answer is worth paying for.
OUTPUT_TOKENS_FLOOR = 128
# The planner's floor is lower: a plan of one subtask is about 40 tokens of tool input (ids, a title, an instruction),
# and a plan cut short costs nothing but the plan, since the run falls back to one subtask that is the request itself.
PLANNER_OUTPUT_TOKENS_FLOOR = 64


class BudgetExceeded(Exception):
    """The cost cap cannot cover a call (or a run); the message says what it would have needed."""


class Unpriced(BudgetExceeded):
    """A model has no price, so no cap can be guaranteed for a call to it."""


def text_tokens_bound(*texts: str) -> int:
    return sum(len(text.encode("utf-8")) for text in texts)


def cache_write_surcharge(prefix_tokens: int) -> int:
    """Input-price tokens to add to a bound for a prefix that may be written to the prompt cache (at 1.25x)."""
    return math.ceil(prefix_tokens * (CACHE_WRITE_MULTIPLIER - 1))


def input_tokens_bound(prompt: Prompt, tool: Tool | None = None) -> int:
    """Never below what the API will count as the prompt's input tokens, priced as input: a cached prefix counts
    as written to the cache (1.25x), the dearest it can be."""
    tokens = PROMPT_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS * len(prompt.messages)
    tokens += text_tokens_bound(prompt.system, *(message.content for message in prompt.messages))
    if prompt.cache is not None:
        tokens += cache_write_surcharge(text_tokens_bound(prompt.system[: prompt.cache.chars]))
    if tool is not None:
        schema = json.dumps({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema})
        tokens += TOOL_OVERHEAD_TOKENS + text_tokens_bound(schema)
    return tokens


def price_of(model: str, prices: PriceTable) -> ModelPrice:
    price = price_for(model, prices)
    if price is None:
        raise Unpriced(f"model {model!r} has no price (add it to MODEL_PRICING_FILE): no cost cap can hold for it")
    return price


def worst_case_usd(price: ModelPrice, input_tokens: int, max_tokens: int) -> float:
    return (input_tokens * price.input_per_mtok + max_tokens * price.output_per_mtok) / 1_000_000


def affordable_tokens(price: ModelPrice, input_tokens: int, allotment_usd: float, wanted: int) -> int:
    """The most output tokens (at most ``wanted``) a call with that input can have within ``allotment_usd``."""
    left = allotment_usd * 1_000_000 - input_tokens * price.input_per_mtok
    if left < 0:
        return 0
    return tokens_within(left, price.output_per_mtok, wanted)


def tokens_within(room: float, per_token: float, most: int) -> int:
    """How many of ``most`` tokens ``room`` pays for at ``per_token`` each. Compared before flooring: a cap near
    the largest float overflows the division to inf, which no integer holds."""
    if per_token == 0:
        return most
    affordable = room / per_token
    return most if affordable >= most else math.floor(affordable)


def floor_tokens(configured_max: int, floor: int = OUTPUT_TOKENS_FLOOR) -> int:
    return min(floor, configured_max)


def usd_rounded_up(amount: float) -> float:
    """The least millionth of a dollar not below ``amount``: a cap of that value, printed with six decimals, covers
    it, and one of a millionth less does not."""
    rounded = math.ceil(amount * 1_000_000) / 1_000_000
    return rounded if rounded >= amount else rounded + 1e-6


def fit_call(prompt: Prompt, prices: PriceTable, allotment_usd: float, tool: Tool | None = None) -> Prompt:
    """``prompt`` with its max_tokens lowered to what ``allotment_usd`` covers; raises when below the floor.

    This is the check every service makes before a call: its worst case never exceeds what was reserved for it.
    """
    price = price_of(prompt.model, prices)
    input_tokens = input_tokens_bound(prompt, tool)
    tokens = affordable_tokens(price, input_tokens, allotment_usd, prompt.max_tokens)
    if tokens < floor_tokens(prompt.max_tokens):
        needed = worst_case_usd(price, input_tokens, floor_tokens(prompt.max_tokens))
        raise BudgetExceeded(
            f"the call's cost allotment of ${allotment_usd:.6f} does not cover its worst case "
            f"(at least ${needed:.6f} for {input_tokens} input tokens and {floor_tokens(prompt.max_tokens)} output)"
        )
    return dataclasses.replace(prompt, max_tokens=tokens)


def turn_input_tokens_bound(request: TurnRequest) -> int:
    """``input_tokens_bound`` for one turn of a tool loop: every item, tool call and result, and the offered tools'
    schemas (each call and result framed like a message)."""
    texts = [request.system]
    framed = 0
    for item in request.items:
        framed += 1
        if isinstance(item, UserText):
            texts.append(item.text)
        elif isinstance(item, AssistantTurn):
            texts.append(item.text)
            texts.extend(json.dumps({"id": c.id, "name": c.name, "input": c.arguments}) for c in item.tool_calls)
            framed += len(item.tool_calls)
        elif isinstance(item, ToolResults):
            texts.extend(f"{r.call_id} Error: {r.content}" for r in item.results)
            framed += len(item.results)
    tokens = PROMPT_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS * framed + text_tokens_bound(*texts)
    if request.tools:
        schemas = [
            json.dumps({"name": t.name, "description": t.description, "input_schema": t.input_schema})
            for t in request.tools
        ]
        tokens += TOOL_OVERHEAD_TOKENS + text_tokens_bound(*schemas)
    return tokens


def fit_turn(request: TurnRequest, prices: PriceTable, allotment_usd: float) -> TurnRequest:
    """``fit_call`` for one turn of a tool loop: ``request`` with max_tokens lowered to what ``allotment_usd``
    covers; raises ``BudgetExceeded`` when that is below the floor."""
    price = price_of(request.model, prices)
    input_tokens = turn_input_tokens_bound(request)
    tokens = affordable_tokens(price, input_tokens, allotment_usd, request.max_tokens)
    if tokens < floor_tokens(request.max_tokens):
        needed = worst_case_usd(price, input_tokens, floor_tokens(request.max_tokens))
        raise BudgetExceeded(
            f"${max(0.0, allotment_usd):.6f} of the subtask's cost allotment is left; its next model turn needs at "
            f"least ${needed:.6f} ({input_tokens} input tokens and {floor_tokens(request.max_tokens)} output)"
        )
    return dataclasses.replace(request, max_tokens=tokens)


@dataclass
class Reservation:
    """Money held for one call until it is settled to what the call really cost."""

    ledger: Ledger
    amount: float
    settled: bool = False

    def settle(self, cost: float | None) -> None:
        """Replaces the hold with ``cost``; an unknown cost (a cancelled stream, an unpriced answer) keeps it all."""
        if self.settled:
            return
        self.settled = True
        self.ledger.reserved -= self.amount
        self.ledger.spent += self.amount if cost is None else cost

    def release(self) -> None:
        """The call never started: nothing was spent."""
        self.settle(0.0)

    def widen(self, extra: float) -> None:
        """Holds up to ``extra`` more for the same call (a tool loop's later turns), as much as the cap has left."""
        if self.settled or not self.ledger.capped:
            return
        more = max(0.0, min(extra, self.ledger.available))
        self.ledger.reserved += more
        self.amount += more


@dataclass
class Ledger:
    """One run's money: ``spent + reserved <= cap`` at every moment (a cap of 0 means none)."""

    cap: float
    spent: float = 0.0
    reserved: float = 0.0

    @property
    def capped(self) -> bool:
        return self.cap > 0

    @property
    def available(self) -> float:
        return self.cap - self.spent - self.reserved if self.capped else math.inf

    def reserve(self, amount: float) -> Reservation:
        if amount > self.available:
            raise BudgetExceeded(
                f"${amount:.6f} is needed but only ${max(0.0, self.available):.6f} of the ${self.cap:.6f} cap is left"
            )
        self.reserved += amount
        return Reservation(self, amount)
