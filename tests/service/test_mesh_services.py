"""The three gRPC services in-process, driven through their generated stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.llm.offline import LABEL, OfflineProvider
from agentmesh.v1 import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    synthesizer_pb2,
    synthesizer_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from orchestrator_svc.server import start_orchestrator
from orchestrator_svc.settings import OrchestratorSettings
from tests.support.mesh import Mesh, inprocess_mesh


@pytest.fixture
async def mesh() -> AsyncIterator[Mesh]:
    async with inprocess_mesh(OfflineProvider()) as running:
        yield running


def _run_request(text: str) -> orchestrator_pb2.RunRequest:
    return orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content=text)])


async def test_worker_runs_one_subtask_with_its_inputs(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.address(mesh.worker)) as channel:
        reply = await worker_pb2_grpc.WorkerStub(channel).Execute(
            worker_pb2.ExecuteRequest(
                objective="plan a trip",
                subtask=common_pb2.Subtask(id="t2", title="hotels", instruction="find hotels near the venue"),
                dependencies=[common_pb2.SubtaskResult(subtask_id="t1", output="the venue is in Lyon")],
            ),
            timeout=10,
        )
    assert reply.result.subtask_id == "t2"
    assert "find hotels near the venue" in reply.result.output
    assert "the venue is in Lyon" in reply.result.output
    assert reply.result.usage.agent == "worker" and reply.result.usage.input_tokens > 0


async def test_worker_rejects_an_empty_instruction_with_an_actionable_message(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.address(mesh.worker)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await worker_pb2_grpc.WorkerStub(channel).Execute(
                worker_pb2.ExecuteRequest(subtask=common_pb2.Subtask(id="t1")), timeout=10
            )
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instruction is empty" in (failure.value.details() or "")


async def test_synthesizer_streams_text_then_one_usage_and_names_missing_parts(mesh: Mesh) -> None:
    request = synthesizer_pb2.SynthesizeRequest(
        objective="compare two cities",
        subtasks=[common_pb2.Subtask(id="t1", title="Paris"), common_pb2.Subtask(id="t2", title="Rome")],
        results=[
            common_pb2.SubtaskResult(subtask_id="t1", output="Paris facts"),
            common_pb2.SubtaskResult(subtask_id="t2", error="UNAVAILABLE: worker gone"),
        ],
    )
    async with grpc.aio.insecure_channel(mesh.address(mesh.synthesizer)) as channel:
        chunks = [c async for c in synthesizer_pb2_grpc.SynthesizerStub(channel).Synthesize(request, timeout=10)]
    kinds = [c.WhichOneof("chunk") for c in chunks]
    assert kinds[-1] == "usage" and kinds.count("usage") == 1 and len(kinds) > 2
    text = "".join(c.text_delta for c in chunks)
    assert "Paris facts" in text
    assert "[t2] Rome — MISSING: it failed (UNAVAILABLE: worker gone)" in text
    assert chunks[-1].usage.agent == "synthesizer"


async def test_orchestrator_streams_plan_progress_answer_and_cost_in_order(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel:
        events = [
            e
            async for e in orchestrator_pb2_grpc.OrchestratorStub(channel).Run(
                _run_request("Describe Paris\nDescribe Rome\nthen compare them"), timeout=20
            )
        ]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "usage"
    assert [s.id for s in events[0].plan.subtasks] == ["t1", "t2", "t3"]
    assert list(events[0].plan.subtasks[2].depends_on) == ["t2"]
    assert kinds.count("subtask_started") == kinds.count("subtask_finished") == 3
    assert kinds.index("text_delta") > max(i for i, k in enumerate(kinds) if k == "subtask_finished")
    answer = "".join(e.text_delta for e in events)
    assert answer.startswith(LABEL)
    summary = events[-1].usage
    assert [u.agent for u in summary.by_agent] == ["orchestrator", "worker", "synthesizer"]
    assert summary.by_agent[1].calls == 3
    assert summary.input_tokens == sum(u.input_tokens for u in summary.by_agent)


async def test_orchestrator_rejects_a_request_without_a_user_message(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel:
        call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(
            orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="system", content="hi")]), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for _ in call:
                pass
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user message" in (failure.value.details() or "")


async def test_orchestrator_is_not_serving_while_its_workers_are_unreachable_and_runs_fail_clearly() -> None:
    settings = OrchestratorSettings(
        worker_target="127.0.0.1:1", synthesizer_target="127.0.0.1:1", health_poll_interval=0.2
    )
    orchestrator = await start_orchestrator(settings, OfflineProvider(), "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{orchestrator.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="agentmesh.v1.Orchestrator"), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                async for _ in orchestrator_pb2_grpc.OrchestratorStub(channel).Run(_run_request("a\nb"), timeout=20):
                    pass
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "every subtask failed" in (failure.value.details() or "")
    finally:
        await orchestrator.stop(grace=1)


async def test_synthesizer_uses_results_sent_without_their_subtasks(mesh: Mesh) -> None:
    request = synthesizer_pb2.SynthesizeRequest(
        objective="weekend in Lisbon", results=[common_pb2.SubtaskResult(subtask_id="t1", output="About 300 EUR")]
    )
    async with grpc.aio.insecure_channel(mesh.address(mesh.synthesizer)) as channel:
        chunks = [c async for c in synthesizer_pb2_grpc.SynthesizerStub(channel).Synthesize(request, timeout=10)]
    assert "[t1]\nAbout 300 EUR" in "".join(c.text_delta for c in chunks)
