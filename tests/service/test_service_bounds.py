"""Each service bounds its own work, so a caller that skips the gateway cannot get around its limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import Completion, Prompt, StreamItem
from agentmesh.rpc.server import GrpcServer
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
from synthesizer_svc.server import start_synthesizer
from synthesizer_svc.settings import SynthesizerSettings
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

LOOPBACK_ANY_PORT = "127.0.0.1:0"


class Recording(OfflineProvider):
    """The offline model, keeping every prompt; with ``hold`` set, calls wait until it is released."""

    def __init__(self, hold: bool = False) -> None:
        super().__init__()
        self.prompts: list[Prompt] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Condition()
        if not hold:
            self.release.set()

    async def _record(self, prompt: Prompt) -> None:
        async with self.entered:
            self.prompts.append(prompt)
            self.entered.notify_all()
        await self.release.wait()

    async def complete(self, prompt: Prompt) -> Completion:
        await self._record(prompt)
        return await super().complete(prompt)

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        await self._record(prompt)
        async for item in super().stream(prompt):
            yield item

    async def calls_reach(self, count: int) -> None:
        async with self.entered:
            await self.entered.wait_for(lambda: len(self.prompts) >= count)


def _execute(instruction: str = "count to three", max_output_tokens: int = 0) -> worker_pb2.ExecuteRequest:
    subtask = common_pb2.Subtask(id="t1", title="x", instruction=instruction)
    return worker_pb2.ExecuteRequest(objective="o", subtask=subtask, max_output_tokens=max_output_tokens)


async def _worker(provider: Recording, **settings: Any) -> GrpcServer:
    return await start_worker(WorkerSettings(**settings), provider, LOOPBACK_ANY_PORT)


async def test_the_worker_refuses_calls_beyond_its_concurrency_limit() -> None:
    provider = Recording(hold=True)
    server = await _worker(provider, grpc_max_concurrent_rpcs=3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            held = [asyncio.ensure_future(stub.Execute(_execute(), timeout=30)) for _ in range(3)]
            await asyncio.wait_for(provider.calls_reach(3), 20)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Execute(_execute(), timeout=30)
            provider.release.set()
            replies = await asyncio.gather(*held)
    finally:
        await server.stop(grace=1)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert all(reply.result.output for reply in replies)


async def test_the_worker_refuses_more_text_than_max_input_chars() -> None:
    server = await _worker(Recording(), max_input_chars=1000)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Execute(_execute("x" * 1001), timeout=10)
            reply = await stub.Execute(_execute("x" * 900), timeout=10)
    finally:
        await server.stop(grace=1)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in (refused.value.details() or "")
    assert reply.result.output


async def test_a_message_far_over_the_bound_is_refused_before_it_is_parsed() -> None:
    provider = Recording()
    server = await _worker(provider, max_input_chars=1000)
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await worker_pb2_grpc.WorkerStub(channel).Execute(_execute("x" * 8_000_000), timeout=10)
    finally:
        await server.stop(grace=1)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert provider.prompts == []


async def test_the_orchestrator_bounds_the_conversation_like_the_gateway() -> None:
    settings = OrchestratorSettings(worker_target="127.0.0.1:9", synthesizer_target="127.0.0.1:9")
    assert settings.max_input_chars == 400_000
    server = await start_orchestrator(settings.model_copy(update={"max_input_chars": 50}), Recording(), "127.0.0.1:0")
    request = orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content="y" * 51)])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=10):
                    pass
    finally:
        await server.stop(grace=1)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_worker_clamps_max_output_tokens_to_its_configured_maximum() -> None:
    provider = Recording()
    server = await _worker(provider, worker_max_tokens=512)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            for asked in (1_000_000, 100, 0):
                await stub.Execute(_execute(max_output_tokens=asked), timeout=10)
    finally:
        await server.stop(grace=1)
    assert [prompt.max_tokens for prompt in provider.prompts] == [512, 100, 512]


async def test_the_synthesizer_clamps_max_output_tokens_to_its_configured_maximum() -> None:
    provider = Recording()
    server = await start_synthesizer(SynthesizerSettings(synthesizer_max_tokens=700), provider, LOOPBACK_ANY_PORT)
    request = synthesizer_pb2.SynthesizeRequest(
        objective="o",
        results=[common_pb2.SubtaskResult(subtask_id="t1", output="forty-two")],
        max_output_tokens=2_000_000,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            async for _ in synthesizer_pb2_grpc.SynthesizerStub(channel).Synthesize(request, timeout=10):
                pass
    finally:
        await server.stop(grace=1)
    assert [prompt.max_tokens for prompt in provider.prompts] == [700]


async def test_a_unary_call_without_a_deadline_gets_the_services_default() -> None:
    provider = Recording(hold=True)
    server = await _worker(provider, grpc_default_deadline=0.5)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as expired:
                await asyncio.wait_for(stub.Execute(_execute()), 20)
    finally:
        await server.stop(grace=1)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "default of 0.5 s" in (expired.value.details() or "")


async def test_a_stream_without_a_deadline_gets_the_services_default() -> None:
    provider = Recording(hold=True)
    server = await start_synthesizer(SynthesizerSettings(grpc_default_deadline=0.5), provider, LOOPBACK_ANY_PORT)
    request = synthesizer_pb2.SynthesizeRequest(
        objective="o", results=[common_pb2.SubtaskResult(subtask_id="t1", output="x")]
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = synthesizer_pb2_grpc.SynthesizerStub(channel).Synthesize(request)
            with pytest.raises(grpc.aio.AioRpcError) as expired:
                async with asyncio.timeout(20):
                    async for _ in call:
                        pass
    finally:
        await server.stop(grace=1)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_callers_own_deadline_is_not_cut_by_the_default() -> None:
    provider = Recording(hold=True)
    server = await _worker(provider, grpc_default_deadline=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = asyncio.ensure_future(worker_pb2_grpc.WorkerStub(channel).Execute(_execute(), timeout=30))
            await asyncio.wait_for(provider.calls_reach(1), 20)
            # Past the default: only a caller's deadline may end this call now.
            await asyncio.sleep(0.6)
            provider.release.set()
            reply = await call
    finally:
        await server.stop(grace=1)
    assert reply.result.output


@pytest.mark.parametrize("enabled", [True, False])
async def test_grpc_reflection_can_be_turned_off(enabled: bool) -> None:
    server = await _worker(Recording(), grpc_reflection=enabled)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            try:
                replies = [reply async for reply in call]
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                replies, code = [], exc.code()
    finally:
        await server.stop(grace=1)
    if enabled:
        names = {s.name for s in replies[0].list_services_response.service}
        assert "agentmesh.v1.Worker" in names
    else:
        assert code == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_services_listen_on_loopback_unless_told_otherwise() -> None:
    for settings in (OrchestratorSettings(), WorkerSettings(), SynthesizerSettings()):
        assert settings.grpc_listen.startswith("127.0.0.1:"), type(settings).__name__
