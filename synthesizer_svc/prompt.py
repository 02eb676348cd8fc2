"""The synthesizer's prompt: the request, then each subtask's result or the fact that it is missing."""

from __future__ import annotations

from agentmesh.errors import InvalidInput
from agentmesh.llm.provider import Message, Prompt
from agentmesh.teams.spec import AgentSpec
from agentmesh.v1 import common_pb2, synthesizer_pb2


def build_prompt(request: synthesizer_pb2.SynthesizeRequest, spec: AgentSpec) -> Prompt:
    """The team synthesizer's prompt, model and output cap: a caller may ask for fewer output tokens, never more."""
    if not request.objective.strip():
        raise InvalidInput("objective is empty: the synthesizer needs the user's request")
    results = {result.subtask_id: result for result in request.results}
    # Results whose subtask is not listed still count: a caller may send results alone.
    planned = {subtask.id for subtask in request.subtasks}
    subtasks = [
        *request.subtasks,
        *(common_pb2.Subtask(id=r.subtask_id) for r in request.results if r.subtask_id not in planned),
    ]
    parts = [f"The request:\n{request.objective}"]
    for subtask in subtasks:
        result = results.get(subtask.id)
        if result is None:
            parts.append(f"[{subtask.id}] {subtask.title} — MISSING: this subtask did not run.")
        elif result.outcome == common_pb2.SUBTASK_OUTCOME_OVER_BUDGET:
            parts.append(f"[{subtask.id}] {subtask.title} — MISSING: left out to keep within the cost cap.")
        elif result.error:
            parts.append(f"[{subtask.id}] {subtask.title} — MISSING: it failed ({result.error}).")
        else:
            parts.append(f"[{subtask.id}] {subtask.title}".rstrip() + f"\n{result.output}")
    max_tokens = spec.max_tokens
    return Prompt(
        model=spec.model,
        system=spec.prompt,
        messages=[Message(role="user", content="\n\n".join(parts))],
        # A caller may lower the configured cap, never raise it.
        max_tokens=min(request.max_output_tokens or max_tokens, max_tokens),
    )
