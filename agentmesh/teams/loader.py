"""Reads ``TEAMS_DIR``: each team folder's Markdown files, their YAML front matter validated into ``AgentSpec``s.

A file is an optional front matter block between two ``---`` lines, then the agent's system prompt. A key the
file leaves out takes the role's environment variable (``WORKER_MODEL``, ``WORKER_MAX_TOKENS``, ...), so a
deployment configured before teams existed keeps working. Anything wrong stops start-up with a ``TeamError``
naming the file, the line when YAML gives one, and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from agentmesh.llm import registry
from agentmesh.llm.pricing import PriceTable, price_for
from agentmesh.settings import OrchestratorRole, ProviderName, SynthesizerRole, TeamsSettings, WorkerRole
from agentmesh.teams.spec import (
    DEFAULT_TEAM,
    SPECIALIST_NAME,
    TEAM_NAME,
    AgentSpec,
    FrontMatter,
    Role,
    Team,
    TeamError,
    Teams,
)
from agentmesh.teams.tools_spec import check_tools

KEYS = ", ".join(FrontMatter.model_fields)
# The front matter's first line is the file's second (after the opening ---).
FRONT_MATTER_FIRST_LINE = 2


class RoleDefaults(OrchestratorRole, WorkerRole, SynthesizerRole):
    """Each role's environment variables: what a team file that leaves a key out gets."""

    llm_provider: ProviderName | None = None


def defaults_from(settings: BaseSettings) -> RoleDefaults:
    """The role defaults a service was configured with; the roles it has no settings for come from the environment."""
    given = {name: getattr(settings, name) for name in RoleDefaults.model_fields if hasattr(settings, name)}
    try:
        return RoleDefaults(**given)
    except ValidationError as exc:
        bad = "; ".join(f"{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise TeamError(f"invalid role defaults: {bad}") from None


def load_teams(root: Path, defaults: RoleDefaults) -> Teams:
    if not root.is_dir():
        raise TeamError(f"TEAMS_DIR={root} is not a folder of teams")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    teams = {folder.name: load_team(folder, defaults) for folder in folders}
    if DEFAULT_TEAM not in teams:
        raise TeamError(f"TEAMS_DIR={root} has no {DEFAULT_TEAM}/ team: the service's own model name needs one")
    return Teams(root=root, by_name=teams)


def load_team(folder: Path, defaults: RoleDefaults) -> Team:
    if not TEAM_NAME.fullmatch(folder.name):
        raise TeamError(
            f"{folder}: the team's name must be letters, digits, '_', '.' or '-' (it is part of a model id)"
        )
    workers_dir = folder / "workers"
    files = sorted(workers_dir.glob("*.md")) if workers_dir.is_dir() else []
    if not files:
        raise TeamError(f"{workers_dir}: a team needs at least one worker specialist, workers/<name>.md")
    workers = {path.stem: load_agent(path, folder.name, "worker", defaults) for path in files}
    return Team(
        name=folder.name,
        orchestrator=load_agent(folder / "orchestrator.md", folder.name, "orchestrator", defaults),
        synthesizer=load_agent(folder / "synthesizer.md", folder.name, "synthesizer", defaults),
        workers=workers,
    )


def load_agent(path: Path, team: str, role: Role, defaults: RoleDefaults) -> AgentSpec:
    if not path.is_file():
        raise TeamError(f"{path}: missing; every team has orchestrator.md, synthesizer.md and workers/<name>.md")
    name = path.stem if role == "worker" else role
    if not SPECIALIST_NAME.fullmatch(name):
        raise TeamError(f"{path}: field 'name' (the file's name): {name!r} is not a simple identifier (a-z, 0-9, _)")
    header, prompt = split_front_matter(path, path.read_text(encoding="utf-8"))
    front = _front_matter(path, header)
    if role == "worker" and not (front.description or "").strip():
        raise TeamError(f"{path}: field 'description': required for a worker specialist (the planner reads it)")
    if not prompt.strip():
        raise TeamError(f"{path}: field 'prompt' (the text after the front matter): empty; write the agent's prompt")
    if role != "worker" and (front.mcp_servers or front.tools):
        raise TeamError(f"{path}: field 'mcp_servers': only a worker specialist uses tools")
    wrong = check_tools(front.mcp_servers, front.tools)
    if wrong is not None:
        field, _, message = wrong.partition(": ")
        raise TeamError(f"{path}: field {field!r}: {message}")
    return AgentSpec(
        team=team,
        role=role,
        name=name,
        description=(front.description or "").strip(),
        provider=front.provider or _default_provider(role, defaults),
        model=front.model or str(getattr(defaults, f"{role}_model")),
        max_tokens=front.max_tokens or int(getattr(defaults, f"{role}_max_tokens")),
        prompt=prompt.strip(),
        source=path,
        offline_latency_ms=front.offline_latency_ms,
        mcp_servers=tuple(server.spec() for server in front.mcp_servers),
        tools=tuple(front.tools),
        max_turns=front.max_turns,
        tool_timeout_s=front.tool_timeout,
    )


def split_front_matter(path: Path, text: str) -> tuple[str, str]:
    """The YAML between the opening and closing ``---`` lines, and the body after them."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return "", text
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    raise TeamError(f"{path}, line 1: the front matter opened by --- has no closing --- line")


def _front_matter(path: Path, header: str) -> FrontMatter:
    try:
        data = yaml.safe_load(header)
        node = yaml.compose(header)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + FRONT_MATTER_FIRST_LINE}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TeamError(f"{path}{where}: the front matter is not valid YAML: {problem}") from None
    if data is None:  # no front matter, or only comments
        data = {}
    if not isinstance(data, dict):
        raise TeamError(f"{path}, line {FRONT_MATTER_FIRST_LINE}: the front matter must be 'key: value' lines")
    try:
        return FrontMatter.model_validate(data)
    except ValidationError as exc:
        raise TeamError("; ".join(_describe(path, error, node) for error in exc.errors())) from None


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest YAML node on the error's path (a nested field's own line when it has one)."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(key, value) for key, value in node.value if str(key.value) == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + FRONT_MATTER_FIRST_LINE
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + FRONT_MATTER_FIRST_LINE
        else:
            break
    return line


def _describe(path: Path, error: Any, node: Any) -> str:
    loc = error["loc"]
    key = str(loc[0]) if loc else "(front matter)"
    line = _line_of(node, loc)
    where = f", line {line}" if line is not None else ""
    field = key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key (the keys are {KEYS})" if len(loc) == 1 else "unknown key"
    message = message.removeprefix("Value error, ")
    return f"{path}{where}: field {field!r}: {message}"


def _default_provider(role: Role, defaults: RoleDefaults) -> str:
    own: str | None = getattr(defaults, f"{role}_provider")
    return own or defaults.llm_provider or registry.default_provider(registry.environment())


def load_for(settings: TeamsSettings) -> Teams:
    """The teams of ``TEAMS_DIR``, with a service's own role variables as the defaults of its agents."""
    return load_teams(settings.teams_dir, defaults_from(settings))


def check_priced(teams: Teams, prices: PriceTable, because: str) -> None:
    """Under a cost cap every model must have a price: an unpriced one would fail each capped request."""
    for team in teams.by_name.values():
        for spec in team.agents():
            if spec.provider != "offline" and price_for(spec.model, prices) is None:
                raise TeamError(
                    f"{spec.source}: field 'model': {spec.model!r} has no price, and {because} needs every model "
                    "priced: add it to MODEL_PRICING_FILE, or choose a priced model"
                )
