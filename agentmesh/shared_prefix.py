"""The prefix every worker prompt of a cached run begins with: the shared instructions, then the request.

It is byte-identical for every subtask of a run, so the model API caches it once and each later worker reads it
at a tenth of the input price. The orchestrator decides whether a run is worth caching, with the same text the
worker will send.
"""

from __future__ import annotations

from agentmesh.llm import registry
from agentmesh.llm.prompt_cache import estimated_tokens

# Initial metadata a worker sends once the model's response to a ``warm`` call has begun: the prefix is readable.
RESPONSE_BEGUN = "agentmesh-response-begun"
SHARED_INSTRUCTIONS = (
    "You are one of several workers answering one request together, each doing one subtask of a plan. "
    "The request follows; it is the same for every worker. Your own subtask, and any documents it needs, "
    "come in the user's message: do that subtask, and only that one."
)


def shared_prefix(objective: str) -> str:
    return f"{SHARED_INSTRUCTIONS}\n\n<request>\n{objective}\n</request>"


def worth_caching(provider: str, model: str, objective: str) -> bool:
    """Whether the API of ``provider`` caches the run's prefix for ``model`` (below its minimum it would not)."""
    return registry.caches(provider, model, estimated_tokens(shared_prefix(objective)))
