"""The typed specs a team file becomes: what each agent of a team is (its prompt, backend, model and output cap)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmesh.llm.registry import ProviderName
from agentmesh.teams.tools_spec import McpServerEntry, McpServerSpec, ToolPattern

Role = Literal["orchestrator", "worker", "synthesizer"]
ROLES: tuple[Role, ...] = ("orchestrator", "worker", "synthesizer")
DEFAULT_TEAM = "default"
# A specialist's name is a routing key (the plan tool's enum, WORKER_AGENTS, a metric label): a simple identifier.
SPECIALIST_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A team's name ends up in a model id (agentmesh/<team>).
TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class TeamError(ValueError):
    """A team folder or file cannot be used; the message names the file, the line when known, and the field."""


class FrontMatter(BaseModel):
    """The YAML front matter of one agent's file; every key is optional (a worker's description aside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = Field(default=None, description="what the specialist is for; the planner reads it")
    provider: ProviderName | None = Field(default=None, description="anthropic, openai or offline")
    model: str | None = Field(default=None, min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=64_000)
    offline_latency_ms: int | None = Field(
        default=None, ge=0, le=600_000, description="the offline demo model's simulated latency for this agent"
    )
    mcp_servers: list[McpServerEntry] = Field(default_factory=list, description="the MCP servers it may use")
    tools: list[ToolPattern] = Field(default_factory=list, description="allow-list: server.tool or server.*")
    max_turns: int = Field(default=8, ge=1, le=100, description="model turns of one subtask's tool loop")
    tool_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds one tool call may take")


@dataclass(frozen=True)
class AgentSpec:
    """One agent of a team, with the role's environment defaults filled in."""

    team: str
    role: Role
    # The specialist's name (its file's stem) for a worker; the role for the orchestrator and the synthesizer.
    name: str
    description: str
    provider: str
    model: str
    max_tokens: int
    prompt: str
    source: Path
    # None: OFFLINE_LATENCY_MS (only the offline provider simulates latency).
    offline_latency_ms: int | None = None
    mcp_servers: tuple[McpServerSpec, ...] = ()
    # The allow-list, "server.tool" or "server.*"; every server it names is one of mcp_servers.
    tools: tuple[str, ...] = ()
    max_turns: int = 8
    tool_timeout_s: float = 30.0

    @property
    def specialist(self) -> str:
        """The name usage rows and metrics carry: a worker's, empty for the other roles."""
        return self.name if self.role == "worker" else ""


@dataclass(frozen=True)
class Team:
    name: str
    orchestrator: AgentSpec
    synthesizer: AgentSpec
    # By name, in name order: the first one takes a subtask the planner routed nowhere usable.
    workers: Mapping[str, AgentSpec]

    @property
    def first_worker(self) -> AgentSpec:
        return next(iter(self.workers.values()))

    def worker(self, name: str) -> AgentSpec | None:
        """The specialist called ``name``; an empty name is the first."""
        return self.workers.get(name) if name else self.first_worker

    def agents(self) -> list[AgentSpec]:
        return [self.orchestrator, *self.workers.values(), self.synthesizer]


@dataclass(frozen=True)
class Teams:
    root: Path
    by_name: Mapping[str, Team]

    def get(self, name: str) -> Team | None:
        """The team called ``name``; an empty name is the default team."""
        return self.by_name.get(name or DEFAULT_TEAM)

    def specialists(self) -> list[AgentSpec]:
        return [spec for team in self.by_name.values() for spec in team.workers.values()]
