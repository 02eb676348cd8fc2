"""Builds the synthesizer's gRPC server; tests call it with ``listen="127.0.0.1:0"``."""

from __future__ import annotations

import grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc
from synthesizer_svc.servicer import SynthesizerServicer
from synthesizer_svc.settings import SynthesizerSettings

SERVICE_NAME = synthesizer_pb2.DESCRIPTOR.services_by_name["Synthesizer"].full_name


async def start_synthesizer(
    settings: SynthesizerSettings, provider: LLMProvider, listen: str | None = None
) -> GrpcServer:
    def register(server: grpc.aio.Server) -> None:
        synthesizer_pb2_grpc.add_SynthesizerServicer_to_server(SynthesizerServicer(provider, settings), server)

    return await start_grpc_server(
        listen or settings.grpc_listen,
        register,
        [SERVICE_NAME],
        policy=settings.server_policy(),
    )
