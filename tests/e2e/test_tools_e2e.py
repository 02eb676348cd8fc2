"""Specialists with tools end to end: the gateway, a worker's tool loop on the model API's wire format (the fake
speaks it), and real MCP servers: the repository's demo server over stdio (a child of the worker) and over
streamable HTTP on loopback, and the official ``mcp-server-time`` from PyPI over stdio."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh.settings import DEFAULT_TEAMS_DIR
from tests.e2e.conftest import mint_token
from tests.support import fake_anthropic, fake_openai
from tests.support.fake_api import FakeAPIProcess, tool_results
from tests.support.mcp_servers import HttpDemo, http_demo, journal_events
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-e2e-fake-key-tools-0123456789"
OPENAI_KEY = "sk-proj-e2e-fake-key-tools-0123456789"
MODEL = {"anthropic": "claude-haiku-4-5-20251001", "openai": "gpt-4.1-mini"}
MCP_FACT = "The Model Context Protocol (MCP) is an open standard"
GRPC_FACT = "gRPC is an RPC framework open-sourced by Google in 2015"
TOOL_TIMEOUT_S = 2
MAX_TURNS = 4
PRICES = {MODEL["anthropic"]: (2.0, 10.0), MODEL["openai"]: (0.4, 1.6)}


# -- the MCP servers and the mesh --


def count(path: Path, event: str) -> int:
    return len(journal_events(path, event))


def wait_for_journal(path: Path, event: str, at_least: int, within_s: float = 20.0) -> None:
    """Until the server has journalled ``at_least`` ``event`` lines (a file another process writes: polled)."""
    deadline = time.monotonic() + within_s
    while count(path, event) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name}: {count(path, event)} of {at_least} {event!r} lines within {within_s} s")
        time.sleep(0.05)


def make_teams(root: Path, stdio_journal: Path, url: str) -> Path:
    """The default team, and "tools": one researcher with three MCP servers."""
    shutil.copytree(DEFAULT_TEAMS_DIR / "default", root / "default")
    team = root / "tools"
    (team / "workers").mkdir(parents=True)
    (team / "orchestrator.md").write_text("Plan for the tools team.\n")
    (team / "synthesizer.md").write_text("Merge the research.\n")
    demo = ["-m", "agentmesh.tools.demo_server", "--test-tools", "--journal", str(stdio_journal)]
    (team / "workers" / "researcher.md").write_text(
        "---\n"
        "description: looks facts up with tools\n"
        f"max_turns: {MAX_TURNS}\n"
        f"tool_timeout: {TOOL_TIMEOUT_S}\n"
        "mcp_servers:\n"
        f"  - name: local\n    command: python\n    args: {json.dumps(demo)}\n"
        f"  - name: remote\n    url: {url}\n"
        '  - name: time\n    command: python\n    args: ["-m", "mcp_server_time", "--local-timezone", "UTC"]\n'
        'tools: ["local.*", "remote.*", "time.get_current_time"]\n'
        "---\n"
        "You look facts up with your tools.\n"
    )
    return root


@dataclass
class World:
    wire: str
    fake: FakeAPIProcess
    mesh: ProcessMesh
    stdio_journal: Path
    remote: HttpDemo

    def chat(self, content: str = "What are MCP and gRPC?", **extra: Any) -> httpx.Response:
        return httpx.post(
            f"{self.mesh.base_url}/v1/chat/completions",
            json={"model": "agentmesh/tools", "messages": [{"role": "user", "content": content}], **extra},
            headers={"Authorization": f"Bearer {mint_token(self.mesh.jwt_secret)}"},
            timeout=60,
        )

    def run(self, completion_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {mint_token(self.mesh.jwt_secret)}"}
        response = httpx.get(f"{self.mesh.base_url}/v1/runs/{completion_id}", headers=headers, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def worker_requests(self) -> list[dict[str, Any]]:
        agent_of = fake_anthropic.agent_of if self.wire == "anthropic" else fake_openai.agent_of
        return [r for r in self.fake.requests() if agent_of(r) == "worker"]

    def reset(self, **default: Any) -> None:
        self.fake.control("POST", "reset")
        # The synthesizer repeats its whole prompt, so the client sees what the worker answered.
        self.fake.control("POST", "default", {"echo": True, **default})


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "input": arguments}


@contextmanager
def world(wire: str, workdir: Path, pricing_file: Path) -> Iterator[World]:
    spawn = fake_anthropic.spawn_fake_anthropic if wire == "anthropic" else fake_openai.spawn_fake_openai
    key = ANTHROPIC_KEY if wire == "anthropic" else OPENAI_KEY
    stdio_journal = workdir / "stdio-journal.jsonl"
    with spawn(api_key=key) as fake, http_demo(workdir) as remote:
        if wire == "anthropic":
            env = {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": fake.base_url}
        else:
            env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": f"{fake.base_url}/v1"}
        env |= {
            "LLM_PROVIDER": wire,
            "ORCHESTRATOR_MODEL": MODEL[wire],
            "WORKER_MODEL": MODEL[wire],
            "SYNTHESIZER_MODEL": MODEL[wire],
            "TEAMS_DIR": str(make_teams(workdir / "teams", stdio_journal, remote.url)),
            "MODEL_PRICING_FILE": str(pricing_file),
            "MCP_RECONNECT_BACKOFF_INITIAL": "0.2",
            "MCP_RECONNECT_BACKOFF_MAX": "0.5",
        }
        (workdir / "mesh").mkdir()
        with process_mesh(workdir / "mesh", env=env) as mesh:
            yield World(wire, fake, mesh, stdio_journal, remote)


@pytest.fixture(scope="module")
def pricing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "prices.json"
    prices = {model: {"input_per_mtok": i, "output_per_mtok": o} for model, (i, o) in PRICES.items()}
    path.write_text(json.dumps(prices))
    return path


@pytest.fixture(scope="module")
def anthropic_world(tmp_path_factory: pytest.TempPathFactory, pricing_file: Path) -> Iterator[World]:
    with world("anthropic", tmp_path_factory.mktemp("tools-anthropic"), pricing_file) as running:
        yield running


@pytest.fixture(scope="module")
def openai_world(tmp_path_factory: pytest.TempPathFactory, pricing_file: Path) -> Iterator[World]:
    with world("openai", tmp_path_factory.mktemp("tools-openai"), pricing_file) as running:
        yield running


@pytest.fixture(params=["anthropic", "openai"])
def any_wire(request: pytest.FixtureRequest) -> World:
    running: World = request.getfixturevalue(f"{request.param}_world")
    return running


@pytest.fixture
def w(anthropic_world: World) -> World:
    anthropic_world.reset()
    return anthropic_world


def tool_results_of(body: dict[str, Any]) -> list[str]:
    """The tool results a worker sent, in either wire format."""
    return [result.content for result in tool_results(body)]


# -- the loop, on both wire formats --


def test_a_specialist_calls_tools_over_two_turns_concurrently_and_answers_from_their_results(any_wire: World) -> None:
    w = any_wire
    w.reset()
    local_calls = count(w.stdio_journal, "call")
    # Turn 1: three calls at once. The stats call returns only once the local server has seen both of this turn's
    # calls to it (or after 10 s with fewer): its count proves they were in flight together.
    w.fake.script(
        {
            "tool_calls": [
                call("local__stats", wait_for="call", at_least=local_calls + 2, wait_s=10),
                call("local__lookup_fact", topic="grpc"),
                call("remote__lookup_fact", topic="mcp"),
            ],
            "match_tool_results": 0,
        },
        {"tool_calls": [call("time__get_current_time", timezone="UTC")], "match_tool_results": 3},
    )

    response = w.chat()

    assert response.status_code == 200, response.text
    answer = response.json()["choices"][0]["message"]["content"]
    assert MCP_FACT in answer and GRPC_FACT in answer and "UTC" in answer
    assert re.search(rf'"call":\s*{local_calls + 2}\b', answer), answer  # both local calls were in flight at once
    turns = w.worker_requests()
    assert len(turns) == 3
    assert [len(tool_results_of(t["body"])) for t in turns] == [0, 3, 4]
    assert {t["body"]["model"] for t in turns} == {MODEL[w.wire]}
    run = w.run(response.json()["id"])
    [subtask] = run["subtasks"]
    assert [(c["server"], c["tool"], c["outcome"], c["turn"]) for c in subtask["tool_calls"]] == [
        ("local", "stats", "ok", 1),
        ("local", "lookup_fact", "ok", 1),
        ("remote", "lookup_fact", "ok", 1),
        ("time", "get_current_time", "ok", 2),
    ]
    assert all(c["result_chars"] > 0 for c in subtask["tool_calls"]) and subtask["tool_loop_end"] == "answered"
    worker_usage = [a for a in response.json()["usage"]["agents"] if a["agent"] == "worker"]
    assert [a["calls"] for a in worker_usage] == [3]  # one usage for the subtask: its three turns summed


# -- faults --


def test_a_tool_that_raises_is_an_error_result_and_the_run_answers(w: World) -> None:
    w.fake.script({"tool_calls": [call("local__fail", message="disk on fire")], "match_tool_results": 0})

    response = w.chat("Check the disk")

    assert response.status_code == 200, response.text
    [_, second] = w.worker_requests()
    [result] = second["body"]["messages"][-1]["content"]
    assert result["is_error"] is True and "disk on fire" in json.dumps(result["content"])
    assert "(error)" in response.json()["choices"][0]["message"]["content"]
    [subtask] = w.run(response.json()["id"])["subtasks"]
    assert [c["outcome"] for c in subtask["tool_calls"]] == ["error"] and subtask["outcome"] == "ok"


def test_a_tool_that_hangs_is_cancelled_at_tool_timeout(w: World) -> None:
    cancelled = count(w.stdio_journal, "hang_cancelled")
    w.fake.script({"tool_calls": [call("local__hang")], "match_tool_results": 0})

    response = w.chat("Wait for it")

    assert response.status_code == 200, response.text
    [subtask] = w.run(response.json()["id"])["subtasks"]
    [hung] = subtask["tool_calls"]
    assert hung["outcome"] == "timeout"
    assert TOOL_TIMEOUT_S * 1000 <= hung["duration_ms"] < TOOL_TIMEOUT_S * 1000 + 5000
    wait_for_journal(w.stdio_journal, "hang_cancelled", cancelled + 1)  # the server was told, and stopped


def test_a_killed_mcp_server_fails_that_subtask_s_call_and_later_runs_work_once_it_is_back(w: World) -> None:
    hangs = count(w.remote.journal, "hang_started")
    w.fake.script({"tool_calls": [call("remote__hang", seconds=60)], "match_tool_results": 0})
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(w.chat, "Ask the remote server")
        wait_for_journal(w.remote.journal, "hang_started", hangs + 1)
        w.remote.kill()
        response = pending.result(timeout=60)

    assert response.status_code == 200, response.text
    [subtask] = w.run(response.json()["id"])["subtasks"]
    assert [c["outcome"] for c in subtask["tool_calls"]] in (["error"], ["unavailable"])
    assert "(error)" in response.json()["choices"][0]["message"]["content"]

    w.remote.start()
    deadline = time.monotonic() + 30
    while True:  # each try is a whole run; the worker reconnects with backoff
        w.reset()
        w.fake.script({"tool_calls": [call("remote__lookup_fact", topic="mcp")], "match_tool_results": 0})
        again = w.chat("Ask the remote server again")
        assert again.status_code == 200, again.text
        [subtask] = w.run(again.json()["id"])["subtasks"]
        if subtask["tool_calls"][0]["outcome"] == "ok":
            break
        assert time.monotonic() < deadline, subtask["tool_calls"]
    assert MCP_FACT in again.json()["choices"][0]["message"]["content"]


def test_a_runaway_loop_is_told_it_loops_and_stops_at_max_turns_with_a_final_answer(w: World) -> None:
    w.reset(tool_calls=[call("local__lookup_fact", topic="mcp")])  # every tool turn asks the same again

    response = w.chat("Loop forever")

    assert response.status_code == 200, response.text
    turns = w.worker_requests()
    assert len(turns) == MAX_TURNS
    assert [t["body"]["tool_choice"] for t in turns] == [{"type": "auto"}] * (MAX_TURNS - 1) + [{"type": "none"}]
    assert "you are looping" in " ".join(tool_results_of(turns[-1]["body"]))
    [subtask] = w.run(response.json()["id"])["subtasks"]
    assert [c["outcome"] for c in subtask["tool_calls"]] == ["ok", "ok", "looping"]
    assert subtask["tool_loop_end"] == "max_turns" and subtask["outcome"] == "ok"
    assert MCP_FACT in response.json()["choices"][0]["message"]["content"]


def test_a_client_that_disconnects_during_a_tool_call_cancels_it_and_no_further_model_call_is_made(w: World) -> None:
    journal = w.stdio_journal
    started = count(journal, "hang_started")
    cancelled = count(journal, "cancelled_notification")
    w.fake.script({"tool_calls": [call("local__hang")], "match_tool_results": 0})
    headers = {"Authorization": f"Bearer {mint_token(w.mesh.jwt_secret)}"}
    body = {"model": "agentmesh/tools", "stream": True, "messages": [{"role": "user", "content": "Hang on"}]}

    with httpx.stream("POST", f"{w.mesh.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        wait_for_journal(journal, "hang_started", started + 1)
        completion_id = json.loads(next(r.iter_lines()).removeprefix("data: "))["id"]
    closed_at = time.time()  # the server journals wall-clock times
    # The connection is closed: the run is cancelled through the mesh, down to the MCP call.
    wait_for_journal(journal, "cancelled_notification", cancelled + 1, within_s=TOOL_TIMEOUT_S - 0.5)
    told_at = float(str(journal_events(journal, "cancelled_notification")[cancelled]["t"]))
    assert told_at - closed_at < 1.0  # the MCP server was told within 1 s (long before tool_timeout)
    deadline = time.monotonic() + 10
    while w.run(completion_id)["status"] == "in_progress":  # the gateway's record of the run ends with it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    w.fake.wait_for_state(in_flight=0)
    assert len(w.worker_requests()) == 1  # the turn that asked for the call; none after it


# -- spend --


def cost(request: dict[str, Any]) -> float:
    input_price, output_price = PRICES[request["body"]["model"]]
    usage = request["usage"]
    return float(usage["input_tokens"] * input_price + usage["output_tokens"] * output_price) / 1_000_000


def worst_case(request: dict[str, Any]) -> float:
    input_price, output_price = PRICES[request["body"]["model"]]
    return float(request["usage"]["input_tokens"] * input_price + request["body"]["max_tokens"] * output_price) / 1e6


def test_every_model_call_of_a_capped_tool_loop_starts_within_the_cap(w: World) -> None:
    long_answer = "All about it, in detail. " * 800  # longer than any max_tokens: calls cost their worst case
    w.reset(text=long_answer)
    w.fake.script(
        {"tool_calls": [call("local__lookup_fact", topic="mcp"), call("remote__lookup_fact", topic="grpc")],
         "match_tool_results": 0},
        {"tool_calls": [call("local__word_count", text="a b c")], "match_tool_results": 2},
    )  # fmt: skip
    cap = 0.08  # room for the loop, not for every turn's default max_tokens

    response = w.chat("What is MCP?", max_cost_usd=cap)

    assert response.status_code == 200, response.text
    upstream = w.fake.requests()
    turns = w.worker_requests()
    assert len(turns) == 3  # the cap left room for the whole loop ...
    limits = [t["body"]["max_tokens"] for t in turns]
    assert limits == sorted(limits, reverse=True) and limits[0] < 2048  # ... each turn lowered to what was left
    for model_call in upstream:
        start = model_call["received_s"]
        spent = sum(cost(r) for r in upstream if r["finished_s"] <= start)
        held = sum(worst_case(r) for r in upstream if r["received_s"] <= start < r["finished_s"])
        assert spent + held <= cap + 1e-12, (model_call["body"].get("tool_choice"), spent, held, cap)
    assert response.json()["usage"]["cost_usd"] <= cap
