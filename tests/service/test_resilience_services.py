"""Resilience at the gRPC boundary: deadlines reach model calls, retries do not stack, breakers show in health."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.deadline import remaining_s
from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.breaker import BreakerProvider, BreakerRegistry
from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import (
    BadRequest,
    Completion,
    Message,
    Prompt,
    StreamItem,
    TokenUsage,
    Tool,
    ToolCall,
    Unavailable,
)
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from agentmesh.rpc.breaker_health import health_name, report_breakers
from agentmesh.rpc.channel import create_channel, service_config
from agentmesh.rpc.server import GrpcServer
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.service.conftest import FAKE_API_KEY
from tests.support.fake_anthropic import Behaviour, FakeAnthropic
from tests.support.mesh import inprocess_mesh
from worker_svc.server import SERVICE_NAME as WORKER_SERVICE
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

MODEL = WorkerSettings().worker_model
REQUEST = worker_pb2.ExecuteRequest(objective="o", subtask=common_pb2.Subtask(id="t1", title="t", instruction="do it"))


class Probe:
    """A worker's model: records the deadline each call sees, fails while ``failing``, or hangs until released."""

    name = "probe"

    def __init__(self, *, failing: bool = False, hang: bool = False) -> None:
        self.failing = failing
        self.hang = hang
        self.calls = 0
        self.remaining: list[float | None] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def complete(self, prompt: Prompt) -> Completion:
        self.calls += 1
        self.remaining.append(remaining_s())
        if self.hang:
            self.entered.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if self.failing:
            raise Unavailable("the model API failed on its side (503)", retryable=True)
        return Completion(text="done", usage=TokenUsage(model=prompt.model))

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        raise NotImplementedError

    def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


@asynccontextmanager
async def running_worker(provider: Probe | BreakerProvider) -> AsyncIterator[GrpcServer]:
    server = await start_worker(WorkerSettings(), provider, "127.0.0.1:0")
    try:
        yield server
    finally:
        await server.stop(grace=1)


async def _execute(server: GrpcServer, deadline_s: float = 10) -> worker_pb2.ExecuteResponse:
    # The orchestrator's own channel: round_robin, and retries of UNAVAILABLE for Execute.
    channel = create_channel(f"127.0.0.1:{server.port}", WORKER_SERVICE, retry_unavailable=True)
    try:
        return await worker_pb2_grpc.WorkerStub(channel).Execute(REQUEST, timeout=deadline_s)
    finally:
        await channel.close()


async def test_the_callers_deadline_reaches_the_model_call() -> None:
    probe = Probe()
    async with running_worker(probe) as server:
        await _execute(server, deadline_s=5)
    (remaining,) = probe.remaining
    assert remaining is not None and 4 < remaining <= 5


async def test_a_passed_deadline_cancels_the_model_call() -> None:
    probe = Probe(hang=True)
    async with running_worker(probe) as server:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _execute(server, deadline_s=0.5)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(probe.cancelled.wait(), timeout=1)
        assert time.monotonic() - started < 1.5


async def test_a_model_failure_is_not_retried_again_by_grpc() -> None:
    """The provider has retried already; gRPC's UNAVAILABLE retries are for replicas that die or drain."""
    probe = Probe(failing=True)
    async with running_worker(probe) as server:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _execute(server)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "model unavailable" in (failure.value.details() or "")
    assert probe.calls == 1


class Flapping(worker_pb2_grpc.WorkerServicer):
    """A replica that answers UNAVAILABLE (as a draining or dying server does) before it answers."""

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    async def Execute(
        self,
        request: worker_pb2.ExecuteRequest,
        context: grpc.aio.ServicerContext[worker_pb2.ExecuteRequest, worker_pb2.ExecuteResponse],
    ) -> worker_pb2.ExecuteResponse:
        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(self.code, "replica going away")
        return worker_pb2.ExecuteResponse(result=common_pb2.SubtaskResult(subtask_id=request.subtask.id))


@pytest.mark.parametrize(
    ("failures", "code", "calls", "succeeds"),
    [
        (2, grpc.StatusCode.UNAVAILABLE, 3, True),  # retried, on another replica when there is one
        (5, grpc.StatusCode.UNAVAILABLE, 3, False),  # bounded: maxAttempts 3
        (1, grpc.StatusCode.DEADLINE_EXCEEDED, 1, False),  # never retried
        (1, grpc.StatusCode.RESOURCE_EXHAUSTED, 1, False),
    ],
)
async def test_the_worker_channel_retries_only_unavailable_and_only_a_few_times(
    failures: int, code: grpc.StatusCode, calls: int, succeeds: bool
) -> None:
    servicer = Flapping(failures, code)
    server = grpc.aio.server()
    worker_pb2_grpc.add_WorkerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # No health service here, and the channel's healthCheckConfig would wait for one: plain channel options.
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.service_config", _retry_only_config()), ("grpc.enable_retries", 1)],
    )
    try:
        call = worker_pb2_grpc.WorkerStub(channel).Execute(REQUEST, timeout=10)
        if succeeds:
            await call
        else:
            with pytest.raises(grpc.aio.AioRpcError):
                await call
    finally:
        await channel.close()
        await server.stop(None)
    assert servicer.calls == calls


def _retry_only_config() -> str:
    config = service_config(WORKER_SERVICE, retry_unavailable=True)
    del config["healthCheckConfig"]
    return json.dumps(config)


async def _health(server: GrpcServer, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(reply.status)


async def _until_health(server: GrpcServer, service: str, status: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service), timeout=5)
        async for reply in watch:
            if reply.status == status:
                return


async def test_an_open_breaker_shows_in_health_and_fails_fast_while_the_service_stays_serving() -> None:
    probe = Probe(failing=True)
    registry = BreakerRegistry(failure_threshold=2, reset_timeout_s=60)
    async with running_worker(BreakerProvider(probe, registry)) as server:
        report_breakers(server.health, registry)
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await _execute(server)
        await _until_health(server, health_name(MODEL), health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _execute(server)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert f"circuit breaker for {MODEL} is open" in (failure.value.details() or "")
        assert probe.calls == 2
        assert await _health(server, WORKER_SERVICE) == health_pb2.HealthCheckResponse.SERVING


async def test_planning_gives_up_at_once_when_retry_after_would_outlast_the_planning_timeout() -> None:
    with FakeAnthropic(api_key=FAKE_API_KEY) as fake:
        fake.script(Behaviour(status=429, retry_after=30))
        retry = RetryPolicy(max_attempts=3, exponential_multiplier=0.01, exponential_max=0.05)
        provider = RetryingProvider(AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake.base_url), retry)
        try:
            async with inprocess_mesh(provider, planning_timeout=5) as mesh:
                started = time.monotonic()
                async with grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel:
                    call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(
                        orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content="hi")]),
                        timeout=60,
                    )
                    with pytest.raises(grpc.aio.AioRpcError) as failure:
                        async for _ in call:
                            pass
                elapsed = time.monotonic() - started
        finally:
            await provider.aclose()
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (failure.value.details() or "").startswith("planning failed: model rate limited")
    assert elapsed < 2
    assert len(fake.requests) == 1


class Hanging(OfflineProvider):
    """The offline model, except that one agent's call never answers until cancelled."""

    def __init__(self, hang: str) -> None:
        super().__init__()
        self.hang = hang
        self.cancelled = asyncio.Event()

    async def _hang(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        if self.hang == "planning":
            await self._hang()
        return await super().call_tool(prompt, tool)

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        if self.hang == "synthesis":
            await self._hang()
        async for item in super().stream(prompt):
            yield item


async def _run(address: str, deadline_s: float = 30) -> tuple[list[str], grpc.aio.AioRpcError]:
    kinds: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(
            orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content="hi")]),
            timeout=deadline_s,
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for event in call:
                kinds.append(str(event.WhichOneof("event")))
    return kinds, failure.value


@pytest.mark.parametrize(
    ("hang", "settings", "deadline_s", "message", "events"),
    [
        ("planning", {"planning_timeout": 0.5}, 30, "planning timed out after 0.5 s", []),
        ("synthesis", {"synthesis_timeout": 0.5}, 30, "synthesis timed out after 0.5 s", ["plan", "subtask_started"]),
        # The caller's deadline is shorter than the phase's: the phase gets what remains, less a margin,
        # so the caller still hears which phase ran out rather than a bare DEADLINE_EXCEEDED.
        ("planning", {}, 1.0, "planning timed out after 0.7", []),
    ],
)
async def test_a_phase_that_runs_out_of_time_is_named_and_its_model_call_cancelled(
    hang: str, settings: dict[str, float], deadline_s: float, message: str, events: list[str]
) -> None:
    provider = Hanging(hang)
    async with inprocess_mesh(provider, **settings) as mesh:
        started = time.monotonic()
        kinds, failure = await _run(mesh.address(mesh.orchestrator), deadline_s)
        assert time.monotonic() - started < 2
        await asyncio.wait_for(provider.cancelled.wait(), timeout=1)
    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (failure.details() or "").startswith(message)
    assert kinds[: len(events)] == events


async def test_a_draining_worker_finishes_its_call_and_tells_watchers_it_is_not_serving() -> None:
    probe = Probe(hang=True)
    server = await start_worker(WorkerSettings(), probe, "127.0.0.1:0")
    address = f"127.0.0.1:{server.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=WORKER_SERVICE))
        assert (await anext(aiter(watch))).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = asyncio.ensure_future(worker_pb2_grpc.WorkerStub(channel).Execute(REQUEST, timeout=10))
        await asyncio.wait_for(probe.entered.wait(), timeout=5)
        stopping = asyncio.create_task(server.stop(grace=5))
        assert (await anext(aiter(watch))).status == health_pb2.HealthCheckResponse.NOT_SERVING
        async with grpc.aio.insecure_channel(address) as late:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await worker_pb2_grpc.WorkerStub(late).Execute(REQUEST, timeout=5)
            assert await _health(server, WORKER_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        # UNAVAILABLE: the orchestrator's retry policy sends such a call to another replica.
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (refused.value.details() or "")
        probe.release.set()
        reply = await in_flight
        released = time.monotonic()
        await stopping
        # Stopped once its last call was done, although the Watch above stays open: not after the 5 s grace.
        assert time.monotonic() - released < 1
    assert reply.result.output == "done"
    assert probe.calls == 1


async def test_the_fake_api_applies_a_scripted_behaviour_only_to_requests_it_matches() -> None:
    with FakeAnthropic(api_key=FAKE_API_KEY) as fake:
        fake.script(Behaviour(status=400, match_text="^fail"), Behaviour(echo=True, match_model="echo-model"))
        provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake.base_url)
        try:
            plain = await provider.complete(_prompt(MODEL, "not failing"))
            echoed = await provider.complete(_prompt("echo-model", "say it back\nall of it"))
            with pytest.raises(BadRequest):
                await provider.complete(_prompt(MODEL, "fail now"))
            again = await provider.complete(_prompt(MODEL, "fail again: the behaviour was used up"))
        finally:
            await provider.aclose()
    assert plain.text == "fake answer: not failing"
    assert echoed.text == "say it back\nall of it"
    assert again.text.startswith("fake answer: ")
    assert [r.status for r in fake.requests] == [200, 200, 400, 200]


def _prompt(model: str, text: str) -> Prompt:
    return Prompt(model=model, system="", messages=[Message(role="user", content=text)], max_tokens=50)
