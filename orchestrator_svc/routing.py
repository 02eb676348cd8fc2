"""Which worker target serves each specialist: ``WORKER_TARGETS`` pairs over the ``WORKER_TARGET`` default. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agentmesh.teams.spec import AgentSpec, TeamError, Teams

REST = "*"
# A new pair starts with "name=", "team/name=" or "*="; any other comma-separated piece belongs to the target before
# it (a gRPC target may list addresses: ipv4:10.0.0.1:50052,10.0.0.2:50052).
_PAIR = re.compile(r"\s*(\*|[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z_]\w*|[A-Za-z_]\w*)\s*=(.*)")


def parse_targets(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    last: str | None = None
    for piece in value.split(","):
        if match := _PAIR.fullmatch(piece):
            last = match.group(1)
            pairs[last] = match.group(2).strip()
        elif last is not None and piece.strip():
            pairs[last] += "," + piece.strip()
        elif piece.strip():
            raise TeamError(f"WORKER_TARGETS: {piece.strip()!r} is no name=target pair (or *=target)")
    for name, target in pairs.items():
        if not target:
            raise TeamError(f"WORKER_TARGETS: {name}= has no target")
    return pairs


@dataclass(frozen=True)
class WorkerRoutes:
    """``team/name``, then ``name``, then ``*``, then WORKER_TARGET."""

    pairs: Mapping[str, str]
    default: str

    @classmethod
    def create(cls, worker_targets: str, worker_target: str, teams: Teams) -> WorkerRoutes:
        """Every name must be a specialist of some team: a typo must not send its calls to the default silently."""
        pairs = parse_targets(worker_targets)
        known = {key for spec in teams.specialists() for key in (spec.name, f"{spec.team}/{spec.name}")}
        for name in pairs:
            if name != REST and name not in known:
                raise TeamError(f"WORKER_TARGETS: {name!r} is no specialist of TEAMS_DIR={teams.root}")
        return cls(pairs, worker_target)

    def target(self, spec: AgentSpec) -> str:
        for key in (f"{spec.team}/{spec.name}", spec.name, REST):
            if key in self.pairs:
                return self.pairs[key]
        return self.default

    def targets(self, teams: Teams) -> set[str]:
        """The distinct targets the teams' specialists are sent to: one channel each."""
        return {self.target(spec) for spec in teams.specialists()}
