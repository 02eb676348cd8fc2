"""The model backends a service's agents use: its own (the role's variables), and one per other backend a team
file chooses, each built once with the same retries, breakers and metering."""

from __future__ import annotations

from collections.abc import Callable

from agentmesh.llm import registry
from agentmesh.llm.provider import LLMProvider
from agentmesh.teams.spec import AgentSpec, TeamError

# A backend by provider name and, for the offline demo model, its simulated latency (None: OFFLINE_LATENCY_MS).
Backend = tuple[str, int | None]
Build = Callable[[str, int | None], LLMProvider]


class TeamProviders:
    """Without ``build`` (a test handing a service one provider), every agent runs on ``default``."""

    def __init__(self, default: LLMProvider, default_name: str, build: Build | None = None) -> None:
        self.default = default
        self._built: dict[Backend, LLMProvider] = {(default_name, None): default}
        self._build = build

    def for_agent(self, spec: AgentSpec) -> LLMProvider:
        """The provider ``spec`` runs on, built on first use (a service resolves its agents' at start-up)."""
        key: Backend = (spec.provider, spec.offline_latency_ms if spec.provider == "offline" else None)
        if key in self._built:
            return self._built[key]
        if self._build is None:
            return self.default
        if missing := registry.missing_credentials(spec.provider, registry.environment()):
            raise TeamError(f"{spec.source}: field 'provider': {spec.provider} needs {missing} (environment or .env)")
        self._built[key] = self._build(*key)
        return self._built[key]

    async def aclose(self) -> None:
        """Closes what it built; the default belongs to whoever passed it in."""
        for provider in self._built.values():
            if provider is not self.default:
                await provider.aclose()
