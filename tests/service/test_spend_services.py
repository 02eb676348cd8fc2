"""The cost cap between the services: refusals before any model call, what a failed run reports, allotments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from agentmesh.cost_cap import SPENT_TRAILER
from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.pricing import cost_usd
from agentmesh.llm.provider import TokenUsage
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.support.fake_anthropic import Behaviour, FakeAnthropic
from tests.support.mesh import Mesh, inprocess_mesh

LONG = "word " * 4000


@pytest.fixture
async def mesh(anthropic_provider: AnthropicProvider) -> AsyncIterator[Mesh]:
    async with inprocess_mesh(anthropic_provider) as running:
        yield running


async def _run(mesh: Mesh, cap: float, text: str = "Describe Paris") -> list[orchestrator_pb2.RunEvent]:
    request = orchestrator_pb2.RunRequest(
        messages=[common_pb2.ChatMessage(role="user", content=text)], max_cost_usd=cap
    )
    async with grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel:
        return [event async for event in orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=30)]


@pytest.mark.parametrize(
    ("cap", "says"), [(0.0001, "the smallest cap this request accepts is $"), (-1.0, "max_cost_usd must be")]
)
async def test_a_cap_that_cannot_cover_the_run_is_refused_before_any_model_call(
    mesh: Mesh, fake_anthropic: FakeAnthropic, cap: float, says: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _run(mesh, cap)
    code = grpc.StatusCode.FAILED_PRECONDITION if cap > 0 else grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.code() == code
    assert says in (failure.value.details() or "")
    assert fake_anthropic.requests == []


async def test_a_failed_capped_run_says_what_it_may_have_spent(mesh: Mesh, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Behaviour(status=400, error_message="no"), times=10)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _run(mesh, 1.0)
    trailers = dict(failure.value.trailing_metadata() or ())
    assert float(trailers[SPENT_TRAILER]) > 0  # the planning call's worst case: its cost is unknown
    assert len(fake_anthropic.requests) == 1


async def test_a_capped_run_reports_its_cap_and_stays_within_it(mesh: Mesh, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.set_default(Behaviour(text=LONG))
    events = await _run(mesh, 0.1, "Describe Paris\nDescribe Rome")
    summary = events[-1].usage
    assert summary.max_cost_usd == pytest.approx(0.1)
    # This provider is not metered (the services' entry points wrap it), so price what the fake API reported.
    spent = [_cost(r.body["model"], r.usage or {}) for r in fake_anthropic.requests]
    assert len(spent) == 4 and 0 < sum(spent) <= 0.1


def _cost(model: str, usage: dict[str, Any]) -> float:
    priced = cost_usd(TokenUsage(model, usage["input_tokens"], usage["output_tokens"]))
    assert priced is not None
    return priced


async def test_a_worker_lowers_max_tokens_to_its_allotment_or_refuses(
    mesh: Mesh, fake_anthropic: FakeAnthropic
) -> None:
    subtask = common_pb2.Subtask(id="t1", title="x", instruction="describe Paris")
    async with grpc.aio.insecure_channel(mesh.address(mesh.worker)) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        await stub.Execute(worker_pb2.ExecuteRequest(subtask=subtask, max_cost_usd=0.002), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Execute(worker_pb2.ExecuteRequest(subtask=subtask, max_cost_usd=0.0000001), timeout=10)
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (sent,) = fake_anthropic.requests
    assert sent.body["max_tokens"] < 2048  # Haiku at $5 per million output tokens: $0.002 buys fewer
