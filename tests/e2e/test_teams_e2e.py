"""Teams end to end: a request's model picks a team, the planner routes subtasks to specialists, each specialist's
calls reach the model API with its own prompt and model, and specialists scale as separate worker processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.settings import DEFAULT_TEAMS_DIR
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.fake_api import text_of
from tests.support.processes import REPO_ROOT, ProcessMesh, _child_env, process_mesh

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-e2e-fake-key-teams-0123456789"
CODER_MODEL = "claude-haiku-4-5-20251001"
CRITIC_MODEL = "claude-sonnet-4-6"
CODER_PROMPT = "You are the coder of the duo team. Write the code asked for."
CRITIC_PROMPT = "You are the critic of the duo team. Find what is wrong."
WRITER_PROMPT = "You are the writer of the duo team."


def make_teams(root: Path) -> Path:
    """The shipped default team, and "duo": a coder and a critic on two models, and a writer."""
    shutil.copytree(DEFAULT_TEAMS_DIR / "default", root / "default")
    duo = root / "duo"
    (duo / "workers").mkdir(parents=True)
    (duo / "orchestrator.md").write_text("Plan for the duo team.\n")
    (duo / "synthesizer.md").write_text("---\nmax_tokens: 700\n---\nMerge the duo's work.\n")
    (duo / "workers" / "coder.md").write_text(
        f"---\ndescription: writes code\nmodel: {CODER_MODEL}\nmax_tokens: 300\n---\n{CODER_PROMPT}\n"
    )
    (duo / "workers" / "critic.md").write_text(
        f"---\ndescription: reviews code\nmodel: {CRITIC_MODEL}\n---\n{CRITIC_PROMPT}\n"
    )
    (duo / "workers" / "writer.md").write_text(f"---\ndescription: writes prose\n---\n{WRITER_PROMPT}\n")
    return root


def subtask(sid: str, agent: str, depends_on: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": sid,
        "title": f"{agent} part",
        "instruction": f"{agent}: {sid}",
        "depends_on": depends_on or [],
        "agent": agent,
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


def env_for(fake: FakeAnthropicProcess, teams: Path) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url, "TEAMS_DIR": str(teams)}


def chat(mesh: ProcessMesh, model: str, content: str = "write and review a parser") -> httpx.Response:
    return httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        timeout=60,
    )


def run_view(mesh: ProcessMesh, completion_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"}
    response = httpx.get(f"{mesh.base_url}/v1/runs/{completion_id}", headers=headers, timeout=10)
    response.raise_for_status()
    return dict(response.json())


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    teams = make_teams(tmp_path_factory.mktemp("teams"))
    with process_mesh(tmp_path_factory.mktemp("teams-mesh"), env=env_for(fake, teams)) as running:
        yield running


def test_each_specialist_calls_the_model_with_its_own_prompt_and_model(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.control("POST", "reset")
    fake.script({"tool_input": {"subtasks": [subtask("a", "coder"), subtask("b", "critic", ["a"])]}})
    response = chat(mesh, "agentmesh/duo")
    assert response.status_code == 200, response.text

    upstream = fake.requests()
    (plan,) = [r for r in upstream if agent_of(r) == "orchestrator"]
    assert text_of(plan["body"]["system"]).startswith("Plan for the duo team.")
    schema = plan["body"]["tools"][0]["input_schema"]["properties"]["subtasks"]["items"]
    assert schema["properties"]["agent"]["enum"] == ["coder", "critic", "writer"]
    workers = {last_line(r): r["body"] for r in upstream if agent_of(r) == "worker"}
    assert set(workers) == {"coder: a", "critic: b"}
    assert (text_of(workers["coder: a"]["system"]), workers["coder: a"]["model"]) == (CODER_PROMPT, CODER_MODEL)
    assert (text_of(workers["critic: b"]["system"]), workers["critic: b"]["model"]) == (CRITIC_PROMPT, CRITIC_MODEL)
    assert workers["coder: a"]["max_tokens"] == 300  # the coder's own cap; the critic has WORKER_MAX_TOKENS
    assert workers["critic: b"]["max_tokens"] == 2048
    (synthesis,) = [r["body"] for r in upstream if agent_of(r) == "synthesizer"]
    assert (text_of(synthesis["system"]), synthesis["max_tokens"]) == ("Merge the duo's work.", 700)

    completion = response.json()
    rows = [(a["agent"], a.get("specialist"), a["model"]) for a in completion["usage"]["agents"]]
    assert ("worker", "coder", CODER_MODEL) in rows and ("worker", "critic", CRITIC_MODEL) in rows
    assert all(specialist is None for agent, specialist, _ in rows if agent != "worker")

    run = run_view(mesh, completion["id"])
    assert [(s["id"], s["agent"]) for s in run["subtasks"]] == [("a", "coder"), ("b", "critic")]


def last_line(request: dict[str, Any]) -> str:
    """The instruction line of a worker's prompt (its second paragraph)."""
    return text_of(request["body"]["messages"][-1]["content"]).split("\n\n")[1]


def test_an_unknown_agent_is_repaired_visibly_and_the_default_model_keeps_todays_prompts(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.control("POST", "reset")
    fake.script({"tool_input": {"subtasks": [subtask("a", "poet")]}})
    completion = chat(mesh, "agentmesh/duo").json()
    run = run_view(mesh, completion["id"])
    assert run["plan"]["repairs"] == ["a: unknown agent 'poet', routed to coder"]
    assert [s["agent"] for s in run["subtasks"]] == ["coder"]

    fake.control("POST", "reset")
    assert chat(mesh, "agentmesh", "hello").status_code == 200
    (worker,) = [r["body"] for r in fake.requests() if agent_of(r) == "worker"]
    assert text_of(worker["system"]).startswith("You are a worker in a team of AI agents.")
    assert "tools" in next(r["body"] for r in fake.requests() if agent_of(r) == "orchestrator")


def test_models_lists_every_team_and_an_unknown_one_is_model_not_found(mesh: ProcessMesh) -> None:
    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"}
    models = httpx.get(f"{mesh.base_url}/v1/models", headers=headers, timeout=10).json()
    assert [m["id"] for m in models["data"]] == ["agentmesh", "agentmesh/duo"]
    for unknown in ("agentmesh/trio", "agentmesh/default", "gpt-4o"):
        response = chat(mesh, unknown)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        assert "agentmesh/duo" in response.json()["error"]["message"]


def test_two_worker_processes_each_get_only_their_own_specialists_calls(
    fake: FakeAnthropicProcess, tmp_path: Path
) -> None:
    teams = make_teams(tmp_path / "teams")
    with process_mesh(
        tmp_path,
        env=env_for(fake, teams),
        workers=2,
        worker_envs=[{"WORKER_AGENTS": "coder,generalist"}, {"WORKER_AGENTS": "duo/critic"}],
        # writer goes to the coder's worker, which does not serve it: that subtask must fail naming it.
        worker_targets=lambda w: f"coder={w[0].address},critic={w[1].address},writer={w[0].address}",
    ) as mesh:
        fake.control("POST", "reset")
        plan = [subtask("a", "coder"), subtask("b", "critic"), subtask("c", "coder"), subtask("d", "writer")]
        fake.script({"tool_input": {"subtasks": plan}})
        response = chat(mesh, "agentmesh/duo")
        assert response.status_code == 200, response.text
        served = [
            [(r["team"], r["specialist"], r["subtask_id"]) for r in w.log_records() if r.get("event") == "subtask done"]
            for w in mesh.workers
        ]
        assert sorted(served[0]) == [("duo", "coder", "a"), ("duo", "coder", "c")]
        assert served[1] == [("duo", "critic", "b")]
        failed = response.json()["usage"]["failed_subtasks"]
        assert [f["id"] for f in failed] == ["d"]
        assert "'writer'" in failed[0]["reason"] and "does not serve" in failed[0]["reason"]


BAD_FILES = {
    "unknown key": ("---\ndescription: d\nmodle: x\n---\nP.\n", "workers/w.md, line 3: field 'modle': unknown key"),
    "no description": ("Do it.\n", "workers/w.md: field 'description': required"),
    "unknown provider": ("---\ndescription: d\nprovider: gemini\n---\nP.\n", "workers/w.md, line 3: field 'provider'"),
    "empty prompt": ("---\ndescription: d\n---\n", "workers/w.md: field 'prompt'"),
    "bad yaml": ("---\ndescription: [x\n---\nP.\n", "workers/w.md, line 3: the front matter is not valid YAML"),
}


# Every case on the worker; one on each other service (they share the loader).
SERVICE_CASES = [("worker_svc", case) for case in sorted(BAD_FILES)] + [
    (module, "unknown key") for module in ("orchestrator_svc", "synthesizer_svc", "gateway")
]


@pytest.mark.parametrize(("module", "case"), SERVICE_CASES)
def test_a_bad_team_file_stops_a_service_naming_the_file_and_the_field(module: str, case: str, tmp_path: Path) -> None:
    text, expected = BAD_FILES[case]
    teams = make_teams(tmp_path / "teams")
    (teams / "duo" / "workers" / "w.md").write_text(text)
    result = run_service(module, {"TEAMS_DIR": str(teams), "JWT_SECRET_KEY": "k" * 40}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and str(teams / "duo") in result.stderr


def test_a_named_bad_specialist_and_an_unpriced_model_under_a_cap_stop_start_up(tmp_path: Path) -> None:
    teams = make_teams(tmp_path / "teams")
    (teams / "duo" / "workers" / "code-reviewer.md").write_text("---\ndescription: d\n---\nP.\n")
    result = run_service("worker_svc", {"TEAMS_DIR": str(teams)}, tmp_path)
    assert result.returncode == 2 and "code-reviewer.md: field 'name'" in result.stderr
    (teams / "duo" / "workers" / "code-reviewer.md").unlink()
    (teams / "duo" / "workers" / "critic.md").write_text("---\ndescription: d\nmodel: claude-unknown-9\n---\nP.\n")
    capped = {"TEAMS_DIR": str(teams), "MAX_COST_PER_REQUEST_USD": "0.5", "ANTHROPIC_API_KEY": API_KEY}
    result = run_service("orchestrator_svc", capped, tmp_path)
    assert result.returncode == 2
    assert "critic.md: field 'model': 'claude-unknown-9' has no price" in result.stderr
    assert "MAX_COST_PER_REQUEST_USD=0.5" in result.stderr


def test_worker_agents_naming_no_specialist_stops_the_worker(tmp_path: Path) -> None:
    teams = make_teams(tmp_path / "teams")
    result = run_service("worker_svc", {"TEAMS_DIR": str(teams), "WORKER_AGENTS": "coder,poet"}, tmp_path)
    assert result.returncode == 2 and "WORKER_AGENTS: 'poet' is no specialist" in result.stderr


def run_service(module: str, env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Starts ``python -m module`` the way make run does; a bad team ends it before it serves."""
    listen = {"GRPC_LISTEN": "127.0.0.1:0", "METRICS_PORT": "0", "API_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=workdir,
        env=_child_env({**listen, **env, "PYTHONPATH": str(REPO_ROOT)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_offline_research_example_fans_out_over_specialists_in_parallel(tmp_path: Path) -> None:
    """make run's printed example, with no key: three specialists planned, their worker calls overlapping."""
    with process_mesh(tmp_path) as mesh:
        response = chat(mesh, "agentmesh/research", "Compare SQLite and PostgreSQL for a small web app")
        assert response.status_code == 200, response.text
        assert "[offline demo model]" in response.json()["choices"][0]["message"]["content"]
        run = run_view(mesh, response.json()["id"])
    subtasks = run["subtasks"]
    assert len(subtasks) >= 3 and len({s["agent"] for s in subtasks}) >= 2
    assert all(s["outcome"] == "ok" for s in subtasks)
    # Parallel work: the last to start started before the first to finish finished.
    assert max(s["started_ms"] for s in subtasks) < min(s["finished_ms"] for s in subtasks)
    assert min(s["finished_ms"] - s["started_ms"] for s in subtasks) >= 300  # the team's simulated latency
