"""Which specialists this worker serves (``WORKER_AGENTS``), each with the provider it runs on."""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.errors import NotFound
from agentmesh.llm.provider import LLMProvider
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import AgentSpec, TeamError, Teams
from agentmesh.tools import Toolbox


@dataclass(frozen=True)
class Served:
    spec: AgentSpec
    provider: LLMProvider


def parse_names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def matches(spec: AgentSpec, name: str) -> bool:
    """``name`` is a specialist's name (in every team) or ``team/name`` (in one)."""
    return name in (spec.name, f"{spec.team}/{spec.name}")


class Specialists:
    """The specialists one worker process runs, resolved at start-up: an unknown name in WORKER_AGENTS stops it.

    ``toolbox`` holds the MCP sessions of their servers (start_worker opens it); empty until then.
    """

    def __init__(
        self, teams: Teams, providers: TeamProviders, worker_agents: str = "", toolbox: Toolbox | None = None
    ) -> None:
        self._teams = teams
        self.toolbox = toolbox or Toolbox()
        names = parse_names(worker_agents)
        for name in names:
            if not any(matches(spec, name) for spec in teams.specialists()):
                known = ", ".join(sorted({f"{s.team}/{s.name}" for s in teams.specialists()}))
                raise TeamError(f"WORKER_AGENTS: {name!r} is no specialist of TEAMS_DIR={teams.root} ({known})")
        self._served = {
            (spec.team, spec.name): Served(spec, providers.for_agent(spec))
            for spec in teams.specialists()
            if not names or any(matches(spec, name) for name in names)
        }

    def specs(self) -> list[AgentSpec]:
        """Every specialist this worker serves."""
        return [served.spec for served in self._served.values()]

    def get(self, team_name: str, name: str) -> Served:
        """The specialist a request names (empty team: the default one; empty name: the team's first)."""
        team = self._teams.get(team_name)
        if team is None:
            raise NotFound(f"no team {team_name!r} in TEAMS_DIR (teams: {', '.join(self._teams.by_name)})")
        spec = team.worker(name)
        if spec is None:
            raise NotFound(f"team {team.name!r} has no specialist {name!r} (specialists: {', '.join(team.workers)})")
        served = self._served.get((team.name, spec.name))
        if served is None:
            mine = ", ".join(f"{t}/{n}" for t, n in self._served) or "none"
            raise NotFound(
                f"this worker does not serve specialist {spec.name!r} of team {team.name!r} "
                f"(WORKER_AGENTS gives it {mine}): route it with WORKER_TARGETS"
            )
        return served
