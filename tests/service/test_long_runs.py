"""Runs that last: connection management never cuts a call, a caller's end stops everything below it, and a
straggler is cut off so the others still make an answer. The mesh runs on the Anthropic SDK against the fake."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import grpc
import pytest

from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.provider import LLMProvider
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.service.conftest import FAKE_API_KEY, FAST_RETRY
from tests.support.fake_anthropic import Behaviour, FakeAnthropic, RecordedRequest, agent_of
from tests.support.mesh import Mesh, inprocess_mesh, wait_serving
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

WORKER_CALL = "^Subtask "  # how a worker's prompt starts (worker_svc/task.py)


def _request(text: str) -> orchestrator_pb2.RunRequest:
    return orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content=text)])


def _agents(fake: FakeAnthropic, agent: str) -> list[RecordedRequest]:
    return [r for r in fake.requests if agent_of(r.to_json()) == agent]


async def _events(mesh: Mesh, text: str, deadline_s: float = 60) -> list[orchestrator_pb2.RunEvent]:
    async with grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as channel:
        call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(_request(text), timeout=deadline_s)
        return [event async for event in call]


@pytest.fixture
def provider(anthropic_provider: LLMProvider) -> LLMProvider:
    return anthropic_provider


async def _streaming_run(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamCall[Any, orchestrator_pb2.RunEvent]:
    """A run whose synthesis has begun streaming."""
    call = orchestrator_pb2_grpc.OrchestratorStub(channel).Run(_request("Describe Paris"), timeout=120)
    async for event in call:
        if event.HasField("text_delta"):
            break
    return call


# -- connection age --


@pytest.mark.parametrize(("grace_s", "survives"), [(0.0, True), (1.0, False)])
async def test_a_stream_outlives_the_connection_age_unless_a_grace_cuts_it(
    fake_anthropic: FakeAnthropic, provider: LLMProvider, grace_s: float, survives: bool
) -> None:
    """Connections age out after 1 s; the synthesis streams for 5 s. With the default grace (none) it finishes;
    a grace shorter than the call (the old hard-coded setting, scaled down) cuts it."""
    fake_anthropic.set_default(Behaviour(stream_hold_s=5))
    every_service = {"grpc_max_connection_age": 1.0, "grpc_max_connection_age_grace": grace_s}
    async with inprocess_mesh(provider, every_service=every_service) as mesh:
        if survives:
            events = await _events(mesh, "Describe Paris\nDescribe Rome")
            assert "".join(e.text_delta for e in events).startswith("fake answer: ")
            assert events[-1].HasField("usage")
        else:
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                await _events(mesh, "Describe Paris\nDescribe Rome")
            assert cut.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_replica_added_later_gets_calls_once_connections_age_out(provider: LLMProvider) -> None:
    """A second worker joins on the same address (SO_REUSEPORT, as a new pod joins a DNS name): connections that
    age out are re-made, and some land on it. Without a connection age the first connection would keep them all."""
    settings = WorkerSettings(grpc_max_connection_age=0.5)
    with FakeAnthropic(api_key=FAKE_API_KEY) as second_api:
        async with inprocess_mesh(provider, every_service={"grpc_max_connection_age": 0.5}) as mesh:
            second_provider = RetryingProvider(
                AnthropicProvider(api_key=FAKE_API_KEY, base_url=second_api.base_url), FAST_RETRY
            )
            second = await start_worker(settings, second_provider, f"127.0.0.1:{mesh.worker.port}")
            try:
                await wait_serving(mesh.address(second))
                async with asyncio.timeout(60):
                    while not second_api.requests:
                        await _events(mesh, "Describe Paris\nDescribe Rome\nDescribe Oslo")
            finally:
                await second.stop(grace=1)
                await second_provider.aclose()
    assert all(agent_of(r.to_json()) == "worker" for r in second_api.requests)


# -- a caller that goes away stops what it started --


async def test_a_cancelled_run_stops_a_worker_in_its_retry_backoff_before_it_calls_again(
    fake_anthropic: FakeAnthropic,
) -> None:
    """The worker's model call got a 529 with retry-after 3 s; the caller cancels during that wait."""
    patient = RetryPolicy(max_attempts=3, exponential_multiplier=0.01, exponential_max=0.05)
    provider = RetryingProvider(AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url), patient)
    fake_anthropic.script(Behaviour(status=529, retry_after=3, match_text=WORKER_CALL))
    try:
        async with inprocess_mesh(provider) as mesh, grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as ch:
            call = orchestrator_pb2_grpc.OrchestratorStub(ch).Run(_request("Describe Paris"), timeout=60)
            async for event in call:
                if event.HasField("subtask_started"):
                    break
            await fake_anthropic.async_wait_until(lambda f: any(r.status == 529 for r in f.requests))
            call.cancel()
            # The worker's handler (and with it the retry loop) ends: nothing is left to call again.
            async with asyncio.timeout(2):
                await mesh.worker.in_flight.idle()
                await mesh.orchestrator.in_flight.idle()
            assert len(_agents(fake_anthropic, "worker")) == 1
    finally:
        await provider.aclose()


async def test_a_cancelled_stream_cancels_the_synthesis_upstream_within_a_second(
    fake_anthropic: FakeAnthropic, provider: LLMProvider
) -> None:
    fake_anthropic.set_default(Behaviour(stream_hold_s=60))
    async with inprocess_mesh(provider) as mesh, grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as ch:
        call = await _streaming_run(ch)  # and it will stream for a minute
        call.cancel()
        await fake_anthropic.async_wait_until(lambda f: f.in_flight == 0, within_s=1.0)
    (synthesis,) = _agents(fake_anthropic, "synthesizer")
    assert synthesis.disconnected


async def test_a_server_shutting_down_ends_its_runs_cleanly_and_cancels_them_upstream(
    fake_anthropic: FakeAnthropic, provider: LLMProvider
) -> None:
    fake_anthropic.set_default(Behaviour(stream_hold_s=60))
    async with inprocess_mesh(provider) as mesh, grpc.aio.insecure_channel(mesh.address(mesh.orchestrator)) as ch:
        call = await _streaming_run(ch)
        await mesh.orchestrator.stop(grace=0.5)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in call:
                pass
        await fake_anthropic.async_wait_until(lambda f: f.in_flight == 0, within_s=2.0)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shut down before this call finished" in (ended.value.details() or "")


# -- stragglers and the coordination budget --


def _finished(events: list[orchestrator_pb2.RunEvent]) -> dict[str, orchestrator_pb2.SubtaskFinished]:
    return {e.subtask_finished.subtask_id: e.subtask_finished for e in events if e.HasField("subtask_finished")}


@pytest.mark.parametrize(
    ("settings", "deadline_s"),
    [
        ({"worker_coordination_timeout": 2}, 60),
        # No coordination limit of its own to speak of: the caller's 8 s deadline decides, and the coordination
        # ends early enough that the synthesis still fits.
        ({"worker_coordination_timeout": 45, "synthesis_timeout": 30}, 8),
    ],
)
async def test_a_straggler_is_cancelled_upstream_and_the_others_make_the_answer(
    fake_anthropic: FakeAnthropic, provider: LLMProvider, settings: dict[str, Any], deadline_s: float
) -> None:
    fake_anthropic.script(Behaviour(latency_s=120, match_text="^Subtask t2:"))
    async with inprocess_mesh(provider, **settings) as mesh:
        events = await _events(mesh, "Describe Paris\nDescribe Rome\nDescribe Oslo", deadline_s=deadline_s)
        straggler = next(r for r in _agents(fake_anthropic, "worker") if "Subtask t2:" in str(r.body))
        assert straggler.disconnected  # cancelled upstream before the synthesis started
    finished = _finished(events)
    assert finished["t2"].outcome == common_pb2.SUBTASK_OUTCOME_TIMED_OUT
    assert "did not finish within the coordination budget" in finished["t2"].error
    assert [finished[t].outcome for t in ("t1", "t3")] == [common_pb2.SUBTASK_OUTCOME_OK] * 2
    assert "".join(e.text_delta for e in events).startswith("fake answer: ")
    synthesis = _agents(fake_anthropic, "synthesizer")[0]
    assert "[t2]" in str(synthesis.body) and "did not finish within the coordination budget" in str(synthesis.body)


async def test_on_coordination_timeout_fail_keeps_the_timeout_an_error(
    fake_anthropic: FakeAnthropic, provider: LLMProvider
) -> None:
    fake_anthropic.script(Behaviour(latency_s=120, match_text="^Subtask t2:"))
    async with inprocess_mesh(provider, worker_coordination_timeout=2, on_coordination_timeout="fail") as mesh:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _events(mesh, "Describe Paris\nDescribe Rome")
        await fake_anthropic.async_wait_until(lambda f: f.in_flight == 0, within_s=2.0)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "with 1 of 2 subtasks unfinished" in (failure.value.details() or "")
    assert _agents(fake_anthropic, "synthesizer") == []


# -- a burst of calls --


async def test_a_burst_of_calls_the_worker_cannot_accept_at_once_all_run() -> None:
    """Thousands of Execute calls arrive while the worker's event loop is busy: they wait to be accepted, none
    is dropped. (grpc core's default cancels calls beyond 1000 waiting: CANCELLED, and the handler never runs.)"""
    # No GRPC_MAX_CONCURRENT_RPCS bound (it would refuse the burst, loudly): this is about calls waiting in core.
    worker = await start_worker(WorkerSettings(grpc_max_concurrent_rpcs=0), OfflineProvider(), "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)

            async def execute(n: int) -> str:
                request = worker_pb2.ExecuteRequest(
                    objective="o", subtask=common_pb2.Subtask(id=f"t{n}", instruction="do it")
                )
                try:
                    await stub.Execute(request, timeout=120)
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name
                return "OK"

            calls = [asyncio.create_task(execute(n)) for n in range(2000)]
            await asyncio.sleep(1)  # lets the calls reach the server
            time.sleep(3)  # noqa: ASYNC251 - stands for a worker loop too busy to accept calls: they queue in core
            outcomes = Counter(await asyncio.gather(*calls))
    finally:
        await worker.stop(grace=1)
    assert outcomes == {"OK": 2000}
