"""Planning: the forced ``plan`` tool, the prompt that asks for it, and validation of what comes back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentmesh.errors import InvalidInput
from agentmesh.llm.provider import Message, Prompt, Role, Tool
from agentmesh.teams.spec import AgentSpec
from agentmesh.v1 import common_pb2
from orchestrator_svc.documents import PlanError as PlanError  # raised here too; callers import it from here
from orchestrator_svc.documents import (
    documents_schema,
    expand_map,
    index_text,
    map_schema,
    resolve_groups,
    subtask_documents,
)

MAX_ID_CHARS = 64
Documents = Sequence[common_pb2.Document]


@dataclass(frozen=True)
class Plan:
    subtasks: list[common_pb2.Subtask]
    fallback_reason: str = ""
    repairs: tuple[str, ...] = ()


def plan_tool(max_subtasks: int, specialists: Sequence[AgentSpec] = (), documents: Documents = ()) -> Tool:
    """With more than one specialist, each subtask must name one (an enum of their names) and the tool's
    description says what each is for; with one, the schema has no ``agent``: there is nothing to choose.
    With documents, a subtask lists those its worker gets, and ``map`` applies one entry to each document."""
    subtask_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "short unique id, e.g. t1"},
            "title": {"type": "string", "description": "a few words, shown to the user as progress"},
            "instruction": {"type": "string", "description": "what the worker must do, self-contained"},
            "depends_on": {
                "type": "array",
                "items": {"type": "string"},
                "description": "ids of subtasks whose output this one needs",
            },
        },
        "required": ["id", "title", "instruction", "depends_on"],
    }
    description = "Submit the plan: the subtasks to run to answer the user's request."
    if len(specialists) > 1:
        names = [spec.name for spec in specialists]
        subtask_schema["properties"]["agent"] = {
            "type": "string",
            "enum": names,
            "description": "the specialist that does this subtask",
        }
        subtask_schema["required"].append("agent")
        roster = "\n".join(f"- {spec.name}: {spec.description}" for spec in specialists)
        description += f" Give each subtask to the specialist best suited to it:\n{roster}"
    properties: dict[str, Any] = {
        "subtasks": {"type": "array", "items": subtask_schema, "minItems": 1, "maxItems": max_subtasks}
    }
    if documents:
        properties["map"] = map_schema(subtask_schema, documents)
        properties["subtasks"]["minItems"] = 0  # a plan may be a map alone
        subtask_schema["properties"]["documents"] = documents_schema(
            documents, "ids of the documents this subtask's worker receives (it sees no others)"
        )
    return Tool(
        name="plan",
        description=description,
        input_schema={"type": "object", "properties": properties, "required": ["subtasks"]},
    )


def request_messages(chat: Sequence[common_pb2.ChatMessage]) -> tuple[str, list[Message]]:
    """System text and the conversation as alternating turns ending with the user's request."""
    system = "\n\n".join(m.content for m in chat if m.role == "system" and m.content.strip())
    turns: list[Message] = []
    for message in chat:
        if message.role not in ("user", "assistant") or not message.content.strip():
            continue
        role: Role = "user" if message.role == "user" else "assistant"
        if turns and turns[-1].role == role:
            turns[-1] = Message(role=role, content=f"{turns[-1].content}\n\n{message.content}")
        else:
            turns.append(Message(role=role, content=message.content))
    if not turns or turns[-1].role != "user":
        raise InvalidInput("messages must end with a non-empty user message: there is no request to answer")
    if turns[0].role != "user":
        turns.insert(0, Message(role="user", content="(conversation start)"))
    return system, turns


def objective_text(chat: Sequence[common_pb2.ChatMessage]) -> str:
    """The request as workers and the synthesizer see it: the last user turn, with earlier turns as context."""
    system, turns = request_messages(chat)
    request = turns[-1].content
    earlier = [f"{t.role}: {t.content}" for t in turns[:-1] if t.content != "(conversation start)"]
    parts = []
    if system:
        parts.append(f"Instructions from the user's system prompt:\n{system}")
    if earlier:
        parts.append("Conversation so far:\n" + "\n".join(earlier))
    parts.append(request if not parts else f"The request:\n{request}")
    return "\n\n".join(parts)


def planning_prompt(
    chat: Sequence[common_pb2.ChatMessage],
    model: str,
    max_tokens: int,
    team_prompt: str = "",
    documents: Documents = (),
) -> Prompt:
    """``team_prompt`` is the team's orchestrator.md; the user's own system prompt follows it. The documents'
    index follows the request."""
    system, turns = request_messages(chat)
    if documents:
        turns[-1] = Message(role="user", content=f"{turns[-1].content}\n\n{index_text(documents)}")
    own = f"The user's own instructions:\n{system}" if system else ""
    full_system = "\n\n".join(part for part in (team_prompt, own) if part)
    return Prompt(model=model, system=full_system, messages=turns, max_tokens=max_tokens)


def _subtask(raw: Any, index: int, known: Sequence[str] = (), repairs: list[str] | None = None) -> common_pb2.Subtask:
    if not isinstance(raw, Mapping):
        raise PlanError(f"subtask {index} is not an object")
    sid, instruction = raw.get("id"), raw.get("instruction")
    if not isinstance(sid, str) or not sid.strip() or len(sid) > MAX_ID_CHARS:
        raise PlanError(f"subtask {index} has no usable id")
    if not isinstance(instruction, str) or not instruction.strip():
        raise PlanError(f"subtask {sid!r} has no instruction")
    title = raw.get("title")
    deps = raw.get("depends_on") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise PlanError(f"subtask {sid!r} has a depends_on that is not a list of ids")
    agent = raw.get("agent")
    return common_pb2.Subtask(
        agent=agent.strip() if isinstance(agent, str) else "",
        id=sid.strip(),
        title=title.strip() if isinstance(title, str) and title.strip() else instruction.strip()[:60],
        instruction=instruction.strip(),
        depends_on=list(dict.fromkeys(d.strip() for d in deps)),
        documents=subtask_documents(raw.get("documents"), sid.strip(), known, [] if repairs is None else repairs),
    )


def _check_graph(subtasks: Sequence[common_pb2.Subtask]) -> None:
    ids = [s.id for s in subtasks]
    if len(set(ids)) != len(ids):
        raise PlanError("subtask ids are not unique")
    known = set(ids)
    for s in subtasks:
        unknown = [d for d in s.depends_on if d not in known]
        if unknown:
            raise PlanError(f"subtask {s.id!r} depends on unknown {', '.join(unknown)}")
        if s.id in s.depends_on:
            raise PlanError(f"subtask {s.id!r} depends on itself")
    remaining = {s.id: set(s.depends_on) for s in subtasks}
    while remaining:
        ready = [sid for sid, deps in remaining.items() if not deps]
        if not ready:
            raise PlanError(f"dependency cycle among {', '.join(sorted(remaining))}")
        for sid in ready:
            del remaining[sid]
        for deps in remaining.values():
            deps.difference_update(ready)


def validate_plan(
    raw: Mapping[str, Any], max_subtasks: int, documents: Documents = (), repairs: list[str] | None = None
) -> list[common_pb2.Subtask]:
    """The plan's subtasks, its map entries expanded (cut to MAX_SUBTASKS); ``repairs`` collects what was changed."""
    repairs = [] if repairs is None else repairs
    items, entries = raw.get("subtasks"), raw.get("map") if documents else None
    if items is None and entries:
        items = []
    if not isinstance(items, list) or not (items or entries):
        raise PlanError("the plan has no subtasks")
    if entries is not None and not isinstance(entries, list):
        raise PlanError("the plan's map is not a list")
    if len(items) > max_subtasks:
        raise PlanError(f"the plan has {len(items)} subtasks, more than MAX_SUBTASKS={max_subtasks}")
    known = [d.id for d in documents]
    subtasks = [_subtask(item, index, known, repairs) for index, item in enumerate(items, start=1)]
    templates = [_subtask(entry, index, known, repairs) for index, entry in enumerate(entries or [], start=1)]
    if clash := {t.id for t in templates} & {s.id for s in subtasks}:
        raise PlanError(f"map entry {sorted(clash)[0]!r} has the id of a subtask")
    expanded, groups = expand_map(templates, documents, max_subtasks - len(subtasks), max_subtasks, repairs)
    subtasks += expanded
    if not subtasks:
        raise PlanError("the plan has no subtasks")
    resolve_groups(subtasks, groups)
    _check_graph(subtasks)
    return subtasks


def fallback_plan(objective: str, reason: str, documents: Documents = ()) -> Plan:
    """One subtask that does the whole request, with every document: always runnable."""
    subtask = common_pb2.Subtask(
        id="t1", title="Answer the request", instruction=objective, documents=[d.id for d in documents]
    )
    return Plan(subtasks=[subtask], fallback_reason=reason)


def cut_plan(objective: str, max_tokens: int, lowered_from: int = 0, documents: Documents = ()) -> Plan:
    """The fallback for a plan the model could not finish within its ``max_tokens``."""
    why = f" (lowered from {lowered_from} to fit the cost cap)" if lowered_from else ""
    return fallback_plan(objective, f"the plan was cut short by its max_tokens of {max_tokens}{why}", documents)


def plan_from_tool_input(
    raw: Mapping[str, Any], objective: str, max_subtasks: int, fallback_reason: str = "", documents: Documents = ()
) -> Plan:
    """The model's plan, or the one-subtask fallback when it is unusable; ``fallback_reason`` tells how the provider
    had to get the input when it could not force the tool."""
    repairs: list[str] = []
    try:
        subtasks = validate_plan(raw, max_subtasks, documents, repairs)
    except PlanError as exc:
        reason = "; ".join(filter(None, [fallback_reason, f"unusable plan: {exc}"]))
        return fallback_plan(objective, reason, documents)
    return Plan(subtasks=subtasks, fallback_reason=fallback_reason, repairs=tuple(repairs))


def route(plan: Plan, specialists: Sequence[str]) -> Plan:
    """Every subtask gets one of ``specialists``: a missing or unknown agent goes to the first, and the plan says so.

    With one specialist there was no choice to make (the schema asked for none), so nothing counts as repaired.
    """
    first = specialists[0]
    repairs: list[str] = []
    for subtask in plan.subtasks:
        if subtask.agent in specialists:
            continue
        if len(specialists) > 1:
            why = f"unknown agent {subtask.agent!r}" if subtask.agent else "no agent"
            repairs.append(f"{subtask.id}: {why}, routed to {first}")
        subtask.agent = first
    return Plan(subtasks=plan.subtasks, fallback_reason=plan.fallback_reason, repairs=(*plan.repairs, *repairs))
