"""The worker's prompt: the objective, its subtask, and the outputs it depends on."""

from __future__ import annotations

from agentmesh.errors import InvalidInput
from agentmesh.llm.provider import Message, Prompt
from agentmesh.v1 import worker_pb2

SYSTEM = (
    "You are a worker in a team of AI agents. You receive one subtask of a larger request. "
    "Do exactly that subtask, thoroughly and concisely; another agent will merge your answer "
    "with the others, so do not restate the whole request or add greetings."
)


def build_prompt(request: worker_pb2.ExecuteRequest, model: str, max_tokens: int) -> Prompt:
    """``max_tokens`` is the agent's configured maximum: a caller may ask for fewer output tokens, never more."""
    subtask = request.subtask
    if not subtask.instruction.strip():
        raise InvalidInput("subtask.instruction is empty: give the worker something to do")
    parts = [f"Subtask {subtask.id}: {subtask.title}".rstrip(": "), subtask.instruction]
    if request.dependencies:
        parts.append("Outputs of the subtasks this one builds on:")
        parts.extend(f"[{dep.subtask_id}]\n{dep.output}" for dep in request.dependencies)
    if request.objective:
        parts.append(f"The overall request, for context:\n{request.objective}")
    return Prompt(
        model=model,
        system=SYSTEM,
        messages=[Message(role="user", content="\n\n".join(parts))],
        # A caller may lower the configured cap, never raise it.
        max_tokens=min(request.max_output_tokens or max_tokens, max_tokens),
    )
