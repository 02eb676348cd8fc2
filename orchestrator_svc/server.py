"""Builds the orchestrator's gRPC server; it reports SERVING only while its worker and synthesizer do."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.teams.loader import check_priced, load_for
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import Teams
from agentmesh.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from orchestrator_svc.downstream import Downstream
from orchestrator_svc.servicer import OrchestratorServicer
from orchestrator_svc.settings import OrchestratorSettings

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name


async def start_orchestrator(
    settings: OrchestratorSettings,
    provider: LLMProvider | TeamProviders,
    listen: str | None = None,
    teams: Teams | None = None,
) -> GrpcServer:
    """``provider`` is the one ORCHESTRATOR_PROVIDER chooses, or the service's providers (team files' too)."""
    providers = provider if isinstance(provider, TeamProviders) else TeamProviders(provider, settings.provider)
    teams = teams or load_for(settings)
    for variable in ("max_cost_per_request_usd", "spend_limit_usd_per_day"):
        if value := getattr(settings, variable):
            check_priced(teams, settings.prices, f"{variable.upper()}={value:g}")
    downstream = Downstream(settings, teams)
    servicer = OrchestratorServicer(teams, providers, downstream, settings)

    def register(server: grpc.aio.Server) -> None:
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)

    running = await start_grpc_server(
        listen or settings.grpc_listen,
        register,
        [SERVICE_NAME],
        serving=False,
        policy=settings.server_policy(),
    )
    watcher = asyncio.create_task(downstream.watch(running.set_serving))

    async def stop_watching() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await downstream.close()

    running.on_close.append(stop_watching)
    return running
