"""Gateway tests: the real app under uvicorn on a free loopback port, in front of a scripted fake orchestrator."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import pytest
import uvicorn
from openai import AsyncOpenAI

from agentmesh.request_context import REQUEST_ID_HEADER
from agentmesh.rpc.errors import OWN_STATUS
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from gateway.__main__ import uvicorn_config
from gateway.app import create_app
from gateway.orchestrator_client import ORCHESTRATOR_SERVICE
from gateway.settings import GatewaySettings

SECRET = "gateway-test-secret-" + "s" * 32
MODEL = "agentmesh"
START_TIMEOUT_S = 10.0

RunEvent = orchestrator_pb2.RunEvent
Context = grpc.aio.ServicerContext[orchestrator_pb2.RunRequest, RunEvent]


def mint_token(subject: str | None = "tester", *, secret: str = SECRET, ttl_s: int = 3600, **claims: Any) -> str:
    payload: dict[str, Any] = {"exp": int(time.time()) + ttl_s, **claims}
    if subject is not None:
        payload["sub"] = subject
    return jwt.encode(payload, secret, algorithm="HS256")


def plan_event() -> RunEvent:
    subtasks = [
        common_pb2.Subtask(id="t1", title="Research the topic", instruction="research"),
        common_pb2.Subtask(id="t2", title="Draft the answer", instruction="draft", depends_on=["t1"]),
    ]
    return RunEvent(plan=orchestrator_pb2.Plan(subtasks=subtasks))


def usage_event() -> RunEvent:
    by_agent = [
        common_pb2.Usage(agent="orchestrator", model="big", input_tokens=30, output_tokens=10, cost_usd=0.003,
                         priced=True, calls=1),
        common_pb2.Usage(agent="worker", model="small", input_tokens=20, output_tokens=12, cost_usd=0.001,
                         priced=True, calls=2),
        common_pb2.Usage(agent="synthesizer", model="small", input_tokens=15, output_tokens=5, cost_usd=0.0005,
                         priced=True, calls=1),
    ]  # fmt: skip
    summary = orchestrator_pb2.UsageSummary(
        by_agent=by_agent, input_tokens=65, output_tokens=27, cost_usd=0.0045, fully_priced=True
    )
    return RunEvent(usage=summary)


HAPPY_RUN = [
    plan_event(),
    RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id="t1")),
    RunEvent(subtask_finished=orchestrator_pb2.SubtaskFinished(subtask_id="t1", duration_ms=1200)),
    RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id="t2")),
    RunEvent(subtask_finished=orchestrator_pb2.SubtaskFinished(subtask_id="t2", duration_ms=800)),
    RunEvent(text_delta="Hello"),
    RunEvent(text_delta=", world"),
    usage_event(),
]


class FakeOrchestrator(orchestrator_pb2_grpc.OrchestratorServicer):
    """Plays ``script`` for every Run and records what it saw: requests, request ids, cancellation."""

    def __init__(self) -> None:
        self.script: Callable[[FakeOrchestrator, Context], AsyncIterator[RunEvent]] = play(HAPPY_RUN)
        self.requests: list[orchestrator_pb2.RunRequest] = []
        self.request_ids: list[str | None] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def Run(self, request: orchestrator_pb2.RunRequest, context: Context) -> AsyncIterator[RunEvent]:
        self.requests.append(request)
        metadata = dict(context.invocation_metadata() or ())
        self.request_ids.append(metadata.get(REQUEST_ID_HEADER))  # type: ignore[arg-type]
        self.started.set()
        try:
            async for event in self.script(self, context):
                yield event
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def play(
    events: list[RunEvent],
    *,
    fail_with: tuple[grpc.StatusCode, str] | None = None,
    wait_after: int | None = None,
    own: bool = True,
) -> Callable[[FakeOrchestrator, Context], AsyncIterator[RunEvent]]:
    """A script: yields ``events`` (pausing on ``fake.release`` after ``wait_after`` of them), then fails if asked:
    as the orchestrator's own handlers do (``own``), or as gRPC itself does, without their trailing metadata."""

    async def script(fake: FakeOrchestrator, context: Context) -> AsyncIterator[RunEvent]:
        for index, event in enumerate(events):
            if index == wait_after:
                await fake.release.wait()
            yield event
        if wait_after == len(events):
            await fake.release.wait()
        if fail_with is not None:
            await context.abort(*fail_with, trailing_metadata=(OWN_STATUS,) if own else ())

    return script


@pytest.fixture
async def fake() -> AsyncIterator[FakeOrchestrator]:
    fake = FakeOrchestrator()
    yield fake
    fake.release.set()


async def start_fake(fake: FakeOrchestrator, *, serving: bool = True) -> GrpcServer:
    return await start_grpc_server(
        "127.0.0.1:0",
        lambda server: orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(fake, server),
        [ORCHESTRATOR_SERVICE],
        serving=serving,
    )


@pytest.fixture
async def orchestrator(fake: FakeOrchestrator) -> AsyncIterator[GrpcServer]:
    server = await start_fake(fake)
    try:
        yield server
    finally:
        await server.stop(grace=0)


def unused_target() -> str:
    """A loopback address where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Gateway:
    url: str
    settings: GatewaySettings

    def openai(self, token: str | None = None) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"{self.url}/v1", api_key=token or mint_token(), max_retries=0, timeout=20)

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or mint_token()}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20)


def gateway_settings(target: str, **overrides: Any) -> GatewaySettings:
    fields: dict[str, Any] = {
        "jwt_secret_key": SECRET,
        "orchestrator_target": target,
        "service_model_name": MODEL,
        "stream_progress": "reasoning",
        "log_format": "standard",
        "shutdown_grace_period": 1,
        **overrides,
    }
    return GatewaySettings(_env_file=None, **fields)  # type: ignore[call-arg]


@asynccontextmanager
async def serve_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    """Runs the app under uvicorn in this loop on a pre-bound socket; returns once /health answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # The deployed server configuration (timeouts, connection bound, proxy headers); the socket replaces host:port.
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as client:
            probe = asyncio.create_task(client.get(f"{url}/health"))
            await asyncio.wait({probe, serving}, return_when=asyncio.FIRST_COMPLETED)
            if not probe.done():
                probe.cancel()
                raise AssertionError(f"uvicorn exited before serving: {serving!r}")
            assert probe.result().status_code == 200
        yield Gateway(url=url, settings=settings)
    finally:
        server.should_exit = True
        await serving
        sock.close()


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(orchestrator: GrpcServer) -> AsyncIterator[GatewayFactory]:
    """Starts gateways in front of the fake orchestrator (or ``target``), with settings overrides."""
    async with AsyncExitStack() as stack:

        async def start(target: str | None = None, **overrides: Any) -> Gateway:
            settings = gateway_settings(target or f"127.0.0.1:{orchestrator.port}", **overrides)
            return await stack.enter_async_context(serve_gateway(settings))

        yield start


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway()
