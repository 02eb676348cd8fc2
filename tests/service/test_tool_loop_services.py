"""A worker's tool loop against the fake Anthropic API and the demo MCP server over stdio, called directly: how it
ends when its cost allotment runs out, and a cancelled Execute stops the tool call in flight and every later turn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.rpc.server import GrpcServer
from agentmesh.teams.loader import RoleDefaults, load_teams
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tests.service.conftest import FAKE_API_KEY
from tests.support.fake_anthropic import Behaviour, FakeAnthropic
from tests.support.mcp_servers import journal_events
from tests.unit.test_teams import write_team
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

MODEL = "claude-haiku-4-5-20251001"  # priced by the built-in table: $1 / $5 per million tokens


@dataclass
class Worker:
    server: GrpcServer
    fake: FakeAnthropic
    journal: Path

    async def execute(self, max_cost_usd: float = 0.0) -> common_pb2.SubtaskResult:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}") as channel:
            subtask = common_pb2.Subtask(id="t1", title="Look up", instruction="What is MCP?", agent="looker")
            request = worker_pb2.ExecuteRequest(team="default", subtask=subtask, max_cost_usd=max_cost_usd)
            response = await worker_pb2_grpc.WorkerStub(channel).Execute(request, timeout=30)
            return response.result


@pytest.fixture
async def worker(tmp_path: Path, fake_anthropic: FakeAnthropic) -> AsyncIterator[Worker]:
    journal = tmp_path / "journal.jsonl"
    write_team(
        tmp_path / "teams",
        looker=(
            f"---\ndescription: looks things up\nmodel: {MODEL}\nmax_tokens: 1000\nmcp_servers:\n  - name: demo\n"
            f"    command: python\n    args: [-m, agentmesh.tools.demo_server, --test-tools, --journal, {journal}]\n"
            "tools: [demo.*]\ntool_timeout: 20\n---\nLook things up.\n"
        ),
    )
    teams = load_teams(tmp_path / "teams", RoleDefaults(llm_provider="anthropic"))
    provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url)
    server = await start_worker(WorkerSettings(), provider, "127.0.0.1:0", teams=teams)
    try:
        yield Worker(server, fake_anthropic, journal)
    finally:
        await server.stop(grace=1)
        await provider.aclose()


def turn(*calls: tuple[str, dict[str, object]], results: int = 0) -> Behaviour:
    return Behaviour(tool_calls=[{"name": n, "input": i} for n, i in calls], match_tool_results=results)


async def test_a_turn_the_allotment_cannot_cover_ends_the_loop_over_budget_with_the_best_answer(worker: Worker) -> None:
    # Turn 1 fits; its tool returns 20000 characters, so turn 2's input alone is worth more than what is left.
    worker.fake.script(turn(("demo__big", {"chars": 20_000})))

    result = await worker.execute(max_cost_usd=0.02)

    [first] = worker.fake.requests  # no second turn was sent
    assert result.tool_loop_end == "over_budget" and result.model_turns == 1
    assert "cost allotment did not cover another model turn after 1" in result.output
    assert [(c.tool, c.outcome, c.result_chars) for c in result.tool_calls] == [("big", "ok", 20_000)]
    assert result.usage.calls == 1 and result.usage.input_tokens == first.usage["input_tokens"]  # type: ignore[index]


async def test_a_cancelled_execute_cancels_the_tool_call_in_flight_and_starts_no_further_turn(worker: Worker) -> None:
    worker.fake.script(turn(("demo__hang", {})))
    call = asyncio.ensure_future(worker.execute())
    await worker.fake.async_wait_until(lambda fake: len(fake.requests) == 1 and fake.in_flight == 0)
    await asyncio.to_thread(_wait_for, worker.journal, "hang_started")

    call.cancel()  # the caller goes away: gRPC cancels the worker's handler

    await asyncio.to_thread(_wait_for, worker.journal, "hang_cancelled", 1.0)  # within 1 s, on the server
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(worker.server.in_flight.idle(), 10)  # the worker's handler has ended ...
    assert len(worker.fake.requests) == 1  # ... without a turn after the cancelled call


def _wait_for(journal: Path, event: str, within_s: float = 20.0) -> None:
    """Polls the server's journal (a file another process writes) until ``event`` appears."""
    deadline = time.monotonic() + within_s
    while not journal_events(journal, event):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event!r} in the MCP server's journal within {within_s} s")
        time.sleep(0.02)
