"""A worker serves the specialists it is given: a direct Execute names team and specialist, NOT_FOUND otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import Completion, Prompt
from agentmesh.rpc.server import GrpcServer
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings


class Recording(OfflineProvider):
    """The offline model, keeping each prompt it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[Prompt] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        return await super().complete(prompt)


@pytest.fixture
async def worker() -> AsyncIterator[tuple[GrpcServer, Recording]]:
    provider = Recording()
    server = await start_worker(WorkerSettings(worker_agents="research/analyst,generalist"), provider, "127.0.0.1:0")
    try:
        yield server, provider
    finally:
        await server.stop(grace=1)


async def _execute(server: GrpcServer, team: str, agent: str) -> worker_pb2.ExecuteResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        subtask = common_pb2.Subtask(id="t1", title="Compare", instruction="Compare two databases", agent=agent)
        request = worker_pb2.ExecuteRequest(team=team, subtask=subtask)
        return await worker_pb2_grpc.WorkerStub(channel).Execute(request, timeout=10)


async def test_a_direct_call_runs_the_named_specialist_with_its_own_prompt(
    worker: tuple[GrpcServer, Recording],
) -> None:
    server, provider = worker
    response = await _execute(server, "research", "analyst")
    assert (response.result.usage.agent, response.result.usage.specialist) == ("worker", "analyst")
    assert provider.prompts[-1].system.startswith("You are the analyst of a research team.")
    default = await _execute(server, "", "")  # no team, no specialist: the default team's first, as before teams
    assert default.result.usage.specialist == "generalist"
    assert provider.prompts[-1].system.startswith("You are a worker in a team of AI agents.")


@pytest.mark.parametrize(
    ("team", "agent", "message"),
    [
        ("nope", "analyst", "no team 'nope'"),
        ("research", "poet", "team 'research' has no specialist 'poet'"),
        ("research", "writer", "does not serve specialist 'writer' of team 'research'"),
    ],
)
async def test_a_specialist_this_worker_does_not_serve_is_not_found(
    worker: tuple[GrpcServer, Recording], team: str, agent: str, message: str
) -> None:
    server, provider = worker
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _execute(server, team, agent)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert message in (caught.value.details() or "")
    assert provider.prompts == []
