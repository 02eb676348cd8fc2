"""A run's cost cap in the orchestrator: fitting the planner, the workers and the synthesis to it, and a
reservation per call.

Pure (no grpc). The worker and synthesizer check each call against the allotment reserved here with the
prompt they really send (``agentmesh.cost_cap.fit_call``), so the constants below only need to be generous.

Every agent's max_tokens is fitted: the planner gets the most that leaves one subtask and the synthesis room at
their floors; after planning the workers and the synthesis share what is left at one output level (each at most
its own max_tokens); when the synthesis' turn comes it gets all the cap has left, settled spend counted as spent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agentmesh.cost_cap import (
    PER_MESSAGE_OVERHEAD_TOKENS,
    PLANNER_OUTPUT_TOKENS_FLOOR,
    PROMPT_OVERHEAD_TOKENS,
    TOOL_OVERHEAD_TOKENS,
    BudgetExceeded,
    Ledger,
    Reservation,
    affordable_tokens,
    cache_write_surcharge,
    floor_tokens,
    input_tokens_bound,
    price_of,
    text_tokens_bound,
    usd_rounded_up,
    worst_case_usd,
)
from agentmesh.llm.pricing import ModelPrice, PriceTable, cost_usd
from agentmesh.llm.provider import Prompt, TokenUsage, Tool
from agentmesh.shared_prefix import shared_prefix
from agentmesh.v1 import common_pb2
from orchestrator_svc.planner import Plan, fallback_plan

# The labels the worker and synthesizer put around the texts (worker_svc/task.py, synthesizer_svc/prompt.py) fit in
# these with room to spare; the agent's own system prompt is counted from its team file.
LABEL_BYTES = 256
PER_RESULT_BYTES = 256
# An agent whose system prompt is not known here (a caller that gives none) is assumed to have one of up to this.
UNKNOWN_PROMPT_BYTES = 768
# Bytes assumed per token of an output not yet written, when the synthesis is planned; each call is bounded again
# with the real bytes when it starts.
OUTPUT_BYTES_PER_TOKEN = 6
# The tool schemas a specialist's MCP servers may list, per turn (the worker checks the real ones).
TOOL_SCHEMA_ALLOWANCE_TOKENS = 4096


@dataclass(frozen=True)
class Agent:
    model: str
    price: ModelPrice
    max_tokens: int
    # The UTF-8 bytes of the agent's own system prompt (its team file's body).
    prompt_bytes: int = UNKNOWN_PROMPT_BYTES


# An agent as the caller describes it: model, configured max_tokens, and (when known) its system prompt.
AgentConfig = tuple[str, int] | tuple[str, int, str]


@dataclass(frozen=True)
class Fit:
    """What the cap affords after planning: each worker's max_tokens, the subtasks left out, the synthesis' hold."""

    worker_tokens: int
    left_out: list[str]
    synthesis_usd: float


@dataclass(frozen=True)
class SharedInputs:
    """What a run's worker prompts carry besides their subtask: documents (bytes by id, labels included), and
    whether the shared prefix (the shared instructions and the objective) leads them, possibly written to the
    prompt cache at 1.25x."""

    document_bytes: Mapping[str, int] = field(default_factory=dict)
    prompt_cache: bool = False

    @classmethod
    def of(cls, documents: Sequence[common_pb2.Document], prompt_cache: bool) -> SharedInputs:
        sizes = {d.id: PER_RESULT_BYTES + text_tokens_bound(d.id, d.name, d.text) for d in documents}
        return cls(sizes, prompt_cache)

    def bytes_for(self, objective: str, subtask: common_pb2.Subtask) -> int:
        """Beyond the objective, counted once already: the subtask's documents, and with the prefix its
        instructions and the surcharge of writing it all to the cache."""
        documents = sum(self.document_bytes.get(d, 0) for d in subtask.documents)
        if not self.prompt_cache:
            return documents
        prefix = text_tokens_bound(shared_prefix(objective))
        return documents + prefix - text_tokens_bound(objective) + cache_write_surcharge(prefix)


NO_SHARED_INPUTS = SharedInputs()


def worker_input_bound(
    objective: str,
    subtask: common_pb2.Subtask,
    dependency_bytes: int,
    prompt_bytes: int = UNKNOWN_PROMPT_BYTES,
    shared: SharedInputs = NO_SHARED_INPUTS,
) -> int:
    fixed = PROMPT_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS + LABEL_BYTES + prompt_bytes
    text = text_tokens_bound(objective, subtask.id, subtask.title, subtask.instruction)
    extra = shared.bytes_for(objective, subtask)
    return fixed + text + dependency_bytes + PER_RESULT_BYTES * len(subtask.depends_on) + extra


def synthesis_input_bound(
    objective: str,
    subtasks: Sequence[common_pb2.Subtask],
    result_bytes: int,
    prompt_bytes: int = UNKNOWN_PROMPT_BYTES,
) -> int:
    fixed = PROMPT_OVERHEAD_TOKENS + PER_MESSAGE_OVERHEAD_TOKENS + LABEL_BYTES + prompt_bytes
    labels = text_tokens_bound(objective, *(s.id + s.title for s in subtasks)) + PER_RESULT_BYTES * len(subtasks)
    return fixed + labels + result_bytes


Workers = Agent | Mapping[str, Agent]


def agent_for(workers: Workers, subtask: common_pb2.Subtask) -> Agent:
    """The specialist that runs ``subtask`` (by ``subtask.agent``; the first when it names none known)."""
    if isinstance(workers, Agent):
        return workers
    return workers.get(subtask.agent) or next(iter(workers.values()))


def fit_plan(
    available: float,
    objective: str,
    subtasks: Sequence[common_pb2.Subtask],
    workers: Workers,
    synthesizer: Agent,
    shared: SharedInputs = NO_SHARED_INPUTS,
) -> Fit:
    """Gives the workers and the synthesis the most max_tokens the cap affords at one level (each at most its own,
    the synthesis' input counting every worker's worst-case output), leaving subtasks out from the end of the plan
    while that is below the floor. ``synthesis_usd`` holds the synthesis at that level until its turn comes."""
    included = list(subtasks)
    while included:
        line = _CostLine(objective, subtasks, included, workers, synthesizer, shared)
        tokens = line.most_tokens(available)
        if tokens >= line.floor:
            kept = {s.id for s in included}
            result_bytes = line.output_tokens(tokens) * OUTPUT_BYTES_PER_TOKEN
            synthesis = worst_case_usd(
                synthesizer.price,
                synthesis_input_bound(objective, subtasks, result_bytes, synthesizer.prompt_bytes),
                min(tokens, synthesizer.max_tokens),
            )
            return Fit(tokens, [s.id for s in subtasks if s.id not in kept], synthesis)
        included = _without_last(included)
    raise BudgetExceeded(
        f"${available:.6f} is left after planning; one subtask with the synthesis needs at least "
        f"${minimum_run_usd(objective, subtasks, workers, synthesizer, shared):.6f}"
    )


def minimum_run_usd(
    objective: str,
    subtasks: Sequence[common_pb2.Subtask],
    workers: Workers,
    synthesizer: Agent,
    shared: SharedInputs = NO_SHARED_INPUTS,
) -> float:
    """The worst case of the first of ``subtasks`` with its worker at the floor, and the synthesis of them all at
    its floor."""
    line = _CostLine(objective, subtasks, subtasks[:1], workers, synthesizer, shared)
    return line.usd(line.floor)


class _CostLine:
    """The worst case of the workers and the synthesis when each may write ``tokens`` (at most its own
    max_tokens): ``fixed + sum(per_token_i * min(tokens, max_i))``, in USD; the synthesis is the last term."""

    def __init__(
        self,
        objective: str,
        subtasks: Sequence[common_pb2.Subtask],
        included: Sequence[common_pb2.Subtask],
        workers: Workers,
        synthesizer: Agent,
        shared: SharedInputs = NO_SHARED_INPUTS,
    ) -> None:
        s = synthesizer.price
        agents = [agent_for(workers, sub) for sub in included]
        fixed = sum(
            worst_case_usd(a.price, worker_input_bound(objective, sub, 0, a.prompt_bytes, shared), 0)
            for a, sub in zip(agents, included, strict=True)
        )
        fixed += worst_case_usd(s, synthesis_input_bound(objective, subtasks, 0, synthesizer.prompt_bytes), 0)
        self.fixed = fixed
        self.worker_caps = [a.max_tokens for a in agents]
        self.caps = [*self.worker_caps, synthesizer.max_tokens]
        self.per_token = [
            *(
                (len(sub.depends_on) * OUTPUT_BYTES_PER_TOKEN * a.price.input_per_mtok + a.price.output_per_mtok)
                / 1_000_000
                + OUTPUT_BYTES_PER_TOKEN * s.input_per_mtok / 1_000_000
                for a, sub in zip(agents, included, strict=True)
            ),
            s.output_per_mtok / 1_000_000,
        ]
        self.floor = max(floor_tokens(cap) for cap in self.caps)

    def output_tokens(self, tokens: int) -> int:
        """What the workers may write in all at ``tokens`` each."""
        return sum(min(tokens, cap) for cap in self.worker_caps)

    def usd(self, tokens: int) -> float:
        return self.fixed + sum(rate * min(tokens, cap) for rate, cap in zip(self.per_token, self.caps, strict=True))

    def most_tokens(self, available: float) -> int:
        """The largest ``tokens`` whose worst case fits in ``available`` (0 when not even the fixed part does)."""
        low, high = 0, max(self.caps)
        if self.usd(high) <= available:
            return high
        if self.usd(0) > available:
            return 0
        while high - low > 1:  # usd(low) fits, usd(high) does not
            middle = (low + high) // 2
            low, high = (middle, high) if self.usd(middle) <= available else (low, middle)
        return low


def _without_last(included: list[common_pb2.Subtask]) -> list[common_pb2.Subtask]:
    """Drops the last subtask, and every one that (through others) depends on it: they could not run anyway."""
    dropped = {included[-1].id}
    kept = included[:-1]
    while dependents := [s for s in kept if dropped.intersection(s.depends_on)]:
        dropped.update(s.id for s in dependents)
        kept = [s for s in kept if s.id not in dropped]
    return kept


@dataclass
class CostAllotter:
    """The ledger of one run and the models it pays for; with no cap every check passes and nothing is priced."""

    ledger: Ledger
    prices: PriceTable
    worker: Agent
    synthesizer: Agent
    worker_tokens: int = 0
    # Each specialist's model and cap by name; a subtask naming none of them is priced as ``worker``.
    specialists: Mapping[str, Agent] = field(default_factory=dict)
    shared: SharedInputs = NO_SHARED_INPUTS
    _synthesis_hold: Reservation | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        cap: float,
        prices: PriceTable,
        worker: AgentConfig,
        synthesizer: AgentConfig,
        specialists: Mapping[str, AgentConfig] | None = None,
        documents: Sequence[common_pb2.Document] = (),
        prompt_cache: bool = False,
    ) -> CostAllotter:
        """``worker`` is the team's first specialist. Raises ``Unpriced`` when capped and a model has no price:
        the cap could not be guaranteed."""
        default, synthesis = _agent(worker, prices, cap), _agent(synthesizer, prices, cap)
        named = {name: _agent(config, prices, cap) for name, config in (specialists or {}).items()}
        most = max([default.max_tokens, *(agent.max_tokens for agent in named.values())])
        shared = SharedInputs.of(documents, prompt_cache)
        return cls(Ledger(cap), prices, default, synthesis, worker_tokens=most, specialists=named, shared=shared)

    def _by_agent(self) -> Mapping[str, Agent]:
        """The default first: ``agent_for`` falls back to the first entry."""
        return {"": self.worker, **self.specialists}

    @property
    def capped(self) -> bool:
        return self.ledger.capped

    def reserve_planning(self, prompt: Prompt, tool: Tool, objective: str) -> tuple[Reservation, Prompt]:
        """Before any model call: the planning call with the most max_tokens that leaves one subtask and the
        synthesis room at their floors; refused (naming the smallest cap accepted) when not even the floors fit."""
        if not self.capped:
            return self.ledger.reserve(0.0), prompt
        price = price_of(prompt.model, self.prices)
        input_tokens = input_tokens_bound(prompt, tool)
        one = [common_pb2.Subtask(id="t1", title="Answer the request", instruction=objective)]
        rest = minimum_run_usd(objective, one, self.worker, self.synthesizer, self.shared)
        floor = floor_tokens(prompt.max_tokens, PLANNER_OUTPUT_TOKENS_FLOOR)
        smallest = worst_case_usd(price, input_tokens, floor) + rest
        if smallest > self.ledger.cap:
            raise BudgetExceeded(
                f"max_cost_usd ${self.ledger.cap:.6f} is too small for any answer: planning, one subtask and the "
                f"synthesis at their smallest max_tokens may cost up to ${smallest:.6f}; the smallest cap this "
                f"request accepts is ${usd_rounded_up(smallest):.6f}"
            )
        tokens = max(floor, affordable_tokens(price, input_tokens, self.ledger.cap - rest, prompt.max_tokens))
        fitted = Prompt(model=prompt.model, system=prompt.system, messages=prompt.messages, max_tokens=tokens)
        return self.ledger.reserve(worst_case_usd(price, input_tokens, tokens)), fitted

    def fit(self, objective: str, subtasks: Sequence[common_pb2.Subtask]) -> dict[str, str]:
        """Holds the synthesis, sets the workers' max_tokens; returns the subtasks left out, with the reason."""
        if not self.capped:
            return {}
        fit = fit_plan(self.ledger.available, objective, subtasks, self._by_agent(), self.synthesizer, self.shared)
        self.worker_tokens = fit.worker_tokens
        self._synthesis_hold = self.ledger.reserve(fit.synthesis_usd)
        kept = len(subtasks) - len(fit.left_out)
        why = f"left out: the cost cap of ${self.ledger.cap:.6f} covers {kept} of {len(subtasks)} subtasks"
        return dict.fromkeys(fit.left_out, why)

    def fit_or_fall_back(
        self, objective: str, plan: Plan, documents: Sequence[common_pb2.Document] = ()
    ) -> tuple[Plan, dict[str, str]]:
        """``fit``, or, when not even the plan's first subtask fits in what planning left (a long one), the
        one-subtask fallback, which planning always leaves room for; the plan says why."""
        try:
            return plan, self.fit(objective, plan.subtasks)
        except BudgetExceeded as exc:
            why = f"not one subtask of the plan fits the cost cap ({exc})"
            fallback = fallback_plan(objective, why, documents)
            return fallback, self.fit(objective, fallback.subtasks)

    def reserve_worker(
        self, objective: str, subtask: common_pb2.Subtask, deps: Sequence[common_pb2.SubtaskResult]
    ) -> tuple[Reservation, int]:
        """The reservation of one worker call and its max_tokens, lowered to what is left if need be."""
        if not self.capped:
            return self.ledger.reserve(0.0), 0
        dependency_bytes = text_tokens_bound(*(dep.output for dep in deps))
        agent = agent_for(self._by_agent(), subtask)
        input_tokens = worker_input_bound(objective, subtask, dependency_bytes, agent.prompt_bytes, self.shared)
        price = agent.price
        wanted = min(self.worker_tokens, agent.max_tokens)
        tokens = affordable_tokens(price, input_tokens, self.ledger.available, wanted)
        if tokens < floor_tokens(agent.max_tokens):
            raise BudgetExceeded(f"left out: the cost cap of ${self.ledger.cap:.6f} cannot cover it any more")
        return self.ledger.reserve(worst_case_usd(price, input_tokens, tokens)), tokens

    def widen_for_tools(self, reservation: Reservation, subtask: common_pb2.Subtask, max_turns: int) -> None:
        """A specialist with tools makes up to ``max_turns`` model calls, each with the tools' schemas and results
        in its input: its hold grows to that many times one call's, plus room for the schemas, as far as the cap
        has money left (first come, first held). The worker fits each turn into what it is given."""
        if not self.capped or max_turns <= 1:
            return
        price = agent_for(self._by_agent(), subtask).price
        schemas = worst_case_usd(price, TOOL_OVERHEAD_TOKENS + TOOL_SCHEMA_ALLOWANCE_TOKENS, 0)
        reservation.widen((max_turns - 1) * reservation.amount + max_turns * schemas)

    def reserve_synthesis(self) -> Reservation:
        """Everything left goes to the synthesis; the synthesizer fits its call into it."""
        if self._synthesis_hold is not None:
            self._synthesis_hold.release()
        return self.ledger.reserve(self.ledger.available if self.capped else 0.0)

    def settle(self, reservation: Reservation, usage: common_pb2.Usage | None) -> None:
        """Settles to the usage the model API reported, priced here; no usage keeps the whole reservation."""
        if usage is None or not self.capped:
            reservation.settle(None)
            return
        tokens = TokenUsage(
            model=usage.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
        )
        reservation.settle(cost_usd(tokens, self.prices))


def _agent(config: AgentConfig, prices: PriceTable, cap: float) -> Agent:
    model, tokens = config[0], config[1]
    prompt_bytes = text_tokens_bound(config[2]) if len(config) == 3 else UNKNOWN_PROMPT_BYTES
    return Agent(model, _price(model, prices, cap), tokens, prompt_bytes)


def _price(model: str, prices: PriceTable, cap: float) -> ModelPrice:
    if cap <= 0:
        return ModelPrice(0.0, 0.0)  # unused: an uncapped run prices nothing here
    return price_of(model, prices)
