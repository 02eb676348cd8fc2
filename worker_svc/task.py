"""The worker's prompt: its specialist's system prompt, then the objective, the subtask and what it builds on."""

from __future__ import annotations

from agentmesh.errors import InvalidInput
from agentmesh.llm.provider import Message, Prompt
from agentmesh.teams.spec import AgentSpec
from agentmesh.v1 import worker_pb2


def build_prompt(request: worker_pb2.ExecuteRequest, spec: AgentSpec) -> Prompt:
    """The specialist's prompt, model and output cap: a caller may ask for fewer output tokens, never more."""
    subtask = request.subtask
    if not subtask.instruction.strip():
        raise InvalidInput("subtask.instruction is empty: give the worker something to do")
    parts = [f"Subtask {subtask.id}: {subtask.title}".rstrip(": "), subtask.instruction]
    if request.dependencies:
        parts.append("Outputs of the subtasks this one builds on:")
        parts.extend(f"[{dep.subtask_id}]\n{dep.output}" for dep in request.dependencies)
    if request.objective:
        parts.append(f"The overall request, for context:\n{request.objective}")
    max_tokens = spec.max_tokens
    return Prompt(
        model=spec.model,
        system=spec.prompt,
        messages=[Message(role="user", content="\n\n".join(parts))],
        # A caller may lower the configured cap, never raise it.
        max_tokens=min(request.max_output_tokens or max_tokens, max_tokens),
    )
