"""Which team a request's ``model`` picks: ``SERVICE_MODEL_NAME`` is the default team, ``<it>/<team>`` any other."""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.teams.loader import load_for
from agentmesh.teams.spec import DEFAULT_TEAM, Team, Teams
from gateway.openai.errors import ApiError
from gateway.settings import GatewaySettings


@dataclass(frozen=True)
class TeamModels:
    teams: Teams
    prefix: str

    @classmethod
    def load(cls, settings: GatewaySettings) -> TeamModels:
        """Validates every team file, as each service does: a bad one stops the gateway too."""
        return cls(load_for(settings), settings.service_model_name)

    def model_id(self, team: str) -> str:
        return self.prefix if team == DEFAULT_TEAM else f"{self.prefix}/{team}"

    def ids(self) -> list[str]:
        """The default team first, then the others by name."""
        names = sorted(self.teams.by_name, key=lambda name: (name != DEFAULT_TEAM, name))
        return [self.model_id(name) for name in names]

    def team(self, model: str) -> Team | None:
        if model == self.prefix:
            return self.teams.get(DEFAULT_TEAM)
        name = model.removeprefix(f"{self.prefix}/")
        return self.teams.get(name) if name != model and name != DEFAULT_TEAM else None

    def require(self, model: str) -> Team:
        """The team ``model`` names, or OpenAI's 404 ``model_not_found`` naming the models offered."""
        team = self.team(model)
        if team is None:
            offered = ", ".join(repr(model) for model in self.ids())
            raise ApiError(
                404,
                f"The model {model!r} does not exist; this service offers {offered} (one per team)",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        return team

    def specialists_of(self, model: str) -> int:
        team = self.team(model)
        return len(team.workers) if team is not None else 0
