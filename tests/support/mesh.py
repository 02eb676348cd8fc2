"""In-process mesh for service tests: real grpc.aio servers on free loopback ports, always stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer
from orchestrator_svc.server import start_orchestrator
from orchestrator_svc.settings import OrchestratorSettings
from synthesizer_svc.server import start_synthesizer
from synthesizer_svc.settings import SynthesizerSettings
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

LOOPBACK_ANY_PORT = "127.0.0.1:0"


@dataclass
class Mesh:
    orchestrator: GrpcServer
    worker: GrpcServer
    synthesizer: GrpcServer

    def address(self, server: GrpcServer) -> str:
        return f"127.0.0.1:{server.port}"


async def wait_serving(address: str, service: str = "", within_s: float = 20.0) -> None:
    """Follows Health.Watch until the service says SERVING; no polling sleeps."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(within_s):
            async for reply in stub.Watch(health_pb2.HealthCheckRequest(service=service)):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return


@asynccontextmanager
async def inprocess_mesh(
    provider: LLMProvider, *, every_service: Mapping[str, Any] | None = None, **orchestrator_settings: Any
) -> AsyncIterator[Mesh]:
    """``every_service`` holds settings all three services get (e.g. the connection age)."""
    common = dict(every_service or {})
    worker = await start_worker(WorkerSettings(**common), provider, LOOPBACK_ANY_PORT)
    synthesizer = await start_synthesizer(SynthesizerSettings(**common), provider, LOOPBACK_ANY_PORT)
    settings = OrchestratorSettings(
        worker_target=f"127.0.0.1:{worker.port}",
        synthesizer_target=f"127.0.0.1:{synthesizer.port}",
        health_poll_interval=0.2,
        **common,
        **orchestrator_settings,
    )
    orchestrator = await start_orchestrator(settings, provider, LOOPBACK_ANY_PORT)
    mesh = Mesh(orchestrator=orchestrator, worker=worker, synthesizer=synthesizer)
    try:
        await wait_serving(mesh.address(orchestrator))
        yield mesh
    finally:
        for server in (orchestrator, synthesizer, worker):
            await server.stop(grace=1)
