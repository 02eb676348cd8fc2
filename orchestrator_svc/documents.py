"""A request's documents in the plan: the index the planner reads, the schema that names them, and the map.

Pure (no grpc). A subtask lists the documents its worker receives (``documents``, an enum of their ids); a map
entry is one piece of work applied to each document it lists (all of them when it lists none), expanded here into
one subtask per document, so a plan over 100 documents does not need 100 written instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentmesh.errors import InvalidInput
from agentmesh.v1 import common_pb2

# What the planner sees of each document: its opening, not every word.
OPENING_LINES = 3
OPENING_CHARS = 240


class PlanError(ValueError):
    """The model's plan cannot be run as given; the message says why."""


def check_documents(documents: Sequence[common_pb2.Document]) -> None:
    """A direct caller's documents too must be addressable: unique, non-empty ids."""
    ids = [document.id for document in documents]
    if any(not sid.strip() for sid in ids) or len(set(ids)) != len(ids):
        raise InvalidInput("documents need unique, non-empty ids (the gateway numbers them D1, D2, ...)")


def index_text(documents: Sequence[common_pb2.Document]) -> str:
    """The documents as the planner sees them: id, name, size and opening lines."""
    lines = [
        f"The request carries {len(documents)} document{'' if len(documents) == 1 else 's'}. A worker sees only the "
        "documents its subtask lists in `documents`; to do the same work on each of many documents, use `map`."
    ]
    for document in documents:
        opening = [line.strip() for line in document.text.splitlines() if line.strip()][:OPENING_LINES]
        text = " / ".join(opening)
        if len(text) > OPENING_CHARS:
            text = text[:OPENING_CHARS].rstrip() + "…"
        lines.append(f"{document.id} {document.name} ({len(document.text):,} characters): {text}")
    return "\n".join(lines)


def documents_schema(documents: Sequence[common_pb2.Document], description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": [d.id for d in documents]}, "description": description}


def map_schema(subtask_schema: Mapping[str, Any], documents: Sequence[common_pb2.Document]) -> dict[str, Any]:
    properties = dict(subtask_schema["properties"])
    properties["documents"] = documents_schema(documents, "the documents to do it for; none listed: every document")
    properties["id"] = {"type": "string", "description": "short unique id, e.g. m1; its subtasks are m1-D1, m1-D2, …"}
    return {
        "type": "array",
        "description": (
            "Work to do once per document: each entry becomes one subtask per document it lists, whose worker "
            "receives that document only. A subtask's depends_on may name an entry's id: it then waits for all of "
            "the entry's subtasks."
        ),
        "items": {
            "type": "object",
            "properties": properties,
            "required": [name for name in subtask_schema["required"] if name != "depends_on"],
        },
    }


def subtask_documents(raw: Any, sid: str, known: Sequence[str], repairs: list[str]) -> list[str]:
    """The ids a subtask lists, in order and once each; unknown ones are dropped, and ``repairs`` says so."""
    if raw is None or not known:
        return []
    if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
        raise PlanError(f"subtask {sid!r} has documents that are not a list of ids")
    ids = list(dict.fromkeys(d.strip() for d in raw))
    if unknown := [d for d in ids if d not in known]:
        repairs.append(f"{sid}: unknown document{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} dropped")
    return [d for d in ids if d in known]


def expand_map(
    entries: Sequence[common_pb2.Subtask],
    documents: Sequence[common_pb2.Document],
    room: int,
    max_subtasks: int,
    repairs: list[str],
) -> tuple[list[common_pb2.Subtask], dict[str, list[str]]]:
    """One subtask per (entry, document), at most ``room`` in all: what does not fit is cut, and ``repairs`` says
    which documents each entry left out. Returns the subtasks and, per entry id, the ids of its subtasks."""
    names = {d.id: d.name for d in documents}
    expanded: list[common_pb2.Subtask] = []
    groups: dict[str, list[str]] = {}
    for entry in entries:
        over = list(entry.documents) or list(names)
        kept, cut = over[: max(0, room - len(expanded))], over[max(0, room - len(expanded)) :]
        if cut:
            repairs.append(
                f"map {entry.id}: {len(over)} documents, but MAX_SUBTASKS={max_subtasks} leaves room for "
                f"{len(kept)}: {_span(cut)} left out"
            )
        subtasks = [
            common_pb2.Subtask(
                id=f"{entry.id}-{doc}",
                title=f"{entry.title}: {names[doc]}",
                instruction=entry.instruction,
                depends_on=entry.depends_on,
                agent=entry.agent,
                documents=[doc],
            )
            for doc in kept
        ]
        groups[entry.id] = [s.id for s in subtasks]
        expanded.extend(subtasks)
    return expanded, groups


def resolve_groups(subtasks: Sequence[common_pb2.Subtask], groups: Mapping[str, Sequence[str]]) -> None:
    """A dependency on a map entry becomes one on each of its subtasks."""
    for subtask in subtasks:
        deps = [expanded for dep in subtask.depends_on for expanded in groups.get(dep, [dep])]
        del subtask.depends_on[:]
        subtask.depends_on.extend(dict.fromkeys(deps))


def _span(ids: Sequence[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]} to {ids[-1]} ({len(ids)})" if len(ids) > 3 else ", ".join(ids)
