"""The worker's prompt: its specialist's system prompt, then the objective, the subtask and what it builds on.

With a cache key the objective moves to the front: the system prompt begins with the run's shared prefix
(``agentmesh.shared_prefix``), identical for every subtask, then the specialist's own prompt; the user's message
holds only what is this subtask's own. Without one the prompt is laid out as it always was.
"""

from __future__ import annotations

from agentmesh.errors import InvalidInput
from agentmesh.llm.provider import CachedPrefix, Message, Prompt
from agentmesh.shared_prefix import shared_prefix
from agentmesh.teams.spec import AgentSpec
from agentmesh.v1 import common_pb2, worker_pb2


def build_prompt(request: worker_pb2.ExecuteRequest, spec: AgentSpec) -> Prompt:
    """The specialist's prompt, model and output cap: a caller may ask for fewer output tokens, never more."""
    subtask = request.subtask
    if not subtask.instruction.strip():
        raise InvalidInput("subtask.instruction is empty: give the worker something to do")
    parts = [f"Subtask {subtask.id}: {subtask.title}".rstrip(": "), subtask.instruction]
    if request.dependencies:
        parts.append("Outputs of the subtasks this one builds on:")
        parts.extend(f"[{dep.subtask_id}]\n{dep.output}" for dep in request.dependencies)
    if request.documents:
        parts.append("Documents for this subtask:")
        parts.extend(_document(document) for document in request.documents)
    system, cache = spec.prompt, None
    if request.cache_key:
        prefix = shared_prefix(request.objective)
        system = f"{prefix}\n\n{spec.prompt}" if spec.prompt else prefix
        cache = CachedPrefix(chars=len(prefix), key=request.cache_key)
    elif request.objective:
        parts.append(f"The overall request, for context:\n{request.objective}")
    max_tokens = spec.max_tokens
    return Prompt(
        model=spec.model,
        system=system,
        messages=[Message(role="user", content="\n\n".join(parts))],
        # A caller may lower the configured cap, never raise it.
        max_tokens=min(request.max_output_tokens or max_tokens, max_tokens),
        cache=cache,
    )


def _document(document: common_pb2.Document) -> str:
    name = document.name.replace('"', "&quot;")
    return f'<document id="{document.id}" name="{name}">\n{document.text}\n</document>'
