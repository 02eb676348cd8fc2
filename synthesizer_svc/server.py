"""Builds the synthesizer's gRPC server; tests call it with ``listen="127.0.0.1:0"``."""

from __future__ import annotations

import grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.teams.loader import load_for
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import Teams
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc
from synthesizer_svc.servicer import SynthesizerServicer
from synthesizer_svc.settings import SynthesizerSettings

SERVICE_NAME = synthesizer_pb2.DESCRIPTOR.services_by_name["Synthesizer"].full_name


async def start_synthesizer(
    settings: SynthesizerSettings,
    provider: LLMProvider | TeamProviders,
    listen: str | None = None,
    teams: Teams | None = None,
) -> GrpcServer:
    """``provider`` is the one SYNTHESIZER_PROVIDER chooses, or the service's providers (team files' too)."""
    providers = provider if isinstance(provider, TeamProviders) else TeamProviders(provider, settings.provider)
    servicer = SynthesizerServicer(teams or load_for(settings), providers, settings)

    def register(server: grpc.aio.Server) -> None:
        synthesizer_pb2_grpc.add_SynthesizerServicer_to_server(servicer, server)

    return await start_grpc_server(
        listen or settings.grpc_listen,
        register,
        [SERVICE_NAME],
        policy=settings.server_policy(),
    )
