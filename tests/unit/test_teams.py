"""The team loader: what a team folder becomes, and every bad file stopping start-up with the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.llm.pricing import DEFAULT_PRICES
from agentmesh.settings import DEFAULT_TEAMS_DIR
from agentmesh.teams.loader import RoleDefaults, check_priced, load_teams
from agentmesh.teams.spec import TeamError

# Today's three prompts, as the Python constants held them before teams existed: the default team keeps them.
PLANNER = (
    "You are the planner of a team of AI agents. Split the user's latest request into independent "
    "subtasks that workers can do in parallel; use depends_on only when a subtask truly needs another's "
    "output. Each instruction must be self-contained. Use as few subtasks as the request needs: a simple "
    "request is one subtask. Always answer by calling the plan tool."
)
WORKER = (
    "You are a worker in a team of AI agents. You receive one subtask of a larger request. "
    "Do exactly that subtask, thoroughly and concisely; another agent will merge your answer "
    "with the others, so do not restate the whole request or add greetings."
)
SYNTHESIZER = (
    "You write the final answer to a user's request from the results of subtasks that other agents "
    "completed. Answer the request directly, as one coherent response in the user's language; do not "
    "mention subtasks, agents or this process. If a part is marked missing, answer what you can and "
    "say plainly which part could not be completed."
)
DEFAULTS = RoleDefaults(llm_provider="offline", worker_model="env-worker-model", worker_max_tokens=333)


def write_team(root: Path, name: str = "default", **workers: str) -> Path:
    folder = root / name
    (folder / "workers").mkdir(parents=True)
    (folder / "orchestrator.md").write_text("Plan.\n")
    (folder / "synthesizer.md").write_text("Answer.\n")
    for stem, text in (workers or {"solo": "---\ndescription: does it\n---\nDo it.\n"}).items():
        (folder / "workers" / f"{stem}.md").write_text(text)
    return folder


def test_the_shipped_default_team_holds_todays_prompts_word_for_word() -> None:
    team = load_teams(DEFAULT_TEAMS_DIR, DEFAULTS).get("")
    assert team is not None and team.name == "default"
    assert team.orchestrator.prompt == PLANNER
    assert team.synthesizer.prompt == SYNTHESIZER
    assert [spec.prompt for spec in team.workers.values()] == [WORKER]


def test_keys_a_file_leaves_out_take_the_role_variables_and_the_file_overrides_them(tmp_path: Path) -> None:
    write_team(
        tmp_path,
        fast="---\ndescription: quick\n---\nBe quick.\n",
        deep="---\ndescription: careful\nmodel: big-model\nmax_tokens: 900\nprovider: offline\n---\nBe careful.\n",
    )
    team = load_teams(tmp_path, DEFAULTS).by_name["default"]
    assert list(team.workers) == ["deep", "fast"]  # name order: the first takes unrouted subtasks
    fast, deep = team.workers["fast"], team.workers["deep"]
    assert (fast.model, fast.max_tokens, fast.provider, fast.prompt) == (
        "env-worker-model",
        333,
        "offline",
        "Be quick.",
    )
    assert (deep.model, deep.max_tokens, deep.description) == ("big-model", 900, "careful")
    assert team.orchestrator.model == DEFAULTS.orchestrator_model


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\ndescription: d\nmodle: x\n---\nP.\n", r"w\.md, line 3: field 'modle': unknown key"),
        ("---\nmodel: x\n---\nP.\n", r"w\.md: field 'description': required for a worker specialist"),
        ("---\ndescription: d\nprovider: gemini\n---\nP.\n", r"w\.md, line 3: field 'provider': unknown provider"),
        ("---\ndescription: d\n---\n\n  \n", r"w\.md: field 'prompt' .*empty"),
        ("---\ndescription: d\nmax_tokens: lots\n---\nP.\n", r"w\.md, line 3: field 'max_tokens'"),
        ("---\ndescription: [unclosed\n---\nP.\n", r"w\.md, line 3: the front matter is not valid YAML"),
        ("---\ndescription: d\nP.\n", r"w\.md, line 1: .*no closing ---"),
    ],
    ids=["unknown-key", "no-description", "unknown-provider", "empty-prompt", "bad-value", "bad-yaml", "unclosed"],
)
def test_a_bad_worker_file_names_the_file_the_line_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    write_team(tmp_path, w=text)
    with pytest.raises(TeamError, match=expected):
        load_teams(tmp_path, DEFAULTS)


def test_a_specialist_name_must_be_a_simple_identifier(tmp_path: Path) -> None:
    write_team(tmp_path, **{"code-reviewer": "---\ndescription: d\n---\nP.\n"})
    with pytest.raises(TeamError, match=r"code-reviewer\.md: field 'name' .*not a simple identifier"):
        load_teams(tmp_path, DEFAULTS)


def test_an_empty_orchestrator_prompt_and_a_missing_file_stop_loading(tmp_path: Path) -> None:
    folder = write_team(tmp_path)
    (folder / "orchestrator.md").write_text("---\nmodel: m\n---\n")
    with pytest.raises(TeamError, match=r"orchestrator\.md: field 'prompt'"):
        load_teams(tmp_path, DEFAULTS)
    (folder / "orchestrator.md").unlink()
    with pytest.raises(TeamError, match=r"orchestrator\.md: missing"):
        load_teams(tmp_path, DEFAULTS)


def test_teams_dir_needs_a_default_team(tmp_path: Path) -> None:
    write_team(tmp_path, name="research")
    with pytest.raises(TeamError, match="has no default/ team"):
        load_teams(tmp_path, DEFAULTS)


def test_an_unpriced_model_under_a_cost_cap_names_the_file_and_the_field(tmp_path: Path) -> None:
    write_team(tmp_path, w="---\ndescription: d\nprovider: anthropic\nmodel: claude-nobody-knows\n---\nP.\n")
    teams = load_teams(tmp_path, RoleDefaults(llm_provider="anthropic"))
    with pytest.raises(TeamError, match=r"w\.md: field 'model': 'claude-nobody-knows' has no price, and MAX_COST"):
        check_priced(teams, DEFAULT_PRICES, "MAX_COST_PER_REQUEST_USD")
    check_priced(load_teams(DEFAULT_TEAMS_DIR, RoleDefaults(llm_provider="anthropic")), DEFAULT_PRICES, "a cap")
