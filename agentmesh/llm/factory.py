"""Builds an agent's provider: the registry's backend inside the wrappers every provider gets."""

from __future__ import annotations

from agentmesh.llm import registry
from agentmesh.llm.breaker import BreakerProvider, BreakerRegistry
from agentmesh.llm.metered import MeteredProvider
from agentmesh.llm.pacing import Pacers, PacingProvider
from agentmesh.llm.provider import LLMProvider
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from agentmesh.settings import GrpcServiceSettings


def create_provider(
    settings: GrpcServiceSettings,
    breakers: BreakerRegistry,
    backend: LLMProvider | None = None,
    pacers: Pacers | None = None,
) -> LLMProvider:
    """Metering outside the breaker outside the retries outside the pacing: a call's retries are one outcome,
    priced once, and each attempt waits for quota.

    ``backend`` (one a team file chose) replaces the agent's configured one; ``pacers`` are the process's (every
    provider calling one model with one key shares its pacer), a registry of its own when None.
    """
    retry = RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        exponential_multiplier=settings.retry_exponential_multiplier,
        exponential_max=settings.retry_exponential_max,
    )
    backend = backend or registry.load(settings.provider)()
    prices = settings.prices
    scope = getattr(backend, "quota_scope", None)  # HTTP providers name their quota; the offline model has none
    if settings.upstream_pacing and scope is not None:
        backend = PacingProvider(backend, pacers or Pacers(), scope)
    guarded = BreakerProvider(RetryingProvider(backend, retry), breakers)
    # The configured model keeps its own metric label even unpriced (a local model): one per agent, bounded.
    return MeteredProvider(guarded, settings.agent, prices, known_models=[*prices, settings.model])
