"""Builds the worker's gRPC server; tests call it with ``listen="127.0.0.1:0"``."""

from __future__ import annotations

import grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.v1 import worker_pb2, worker_pb2_grpc
from worker_svc.servicer import WorkerServicer
from worker_svc.settings import WorkerSettings

SERVICE_NAME = worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name


async def start_worker(settings: WorkerSettings, provider: LLMProvider, listen: str | None = None) -> GrpcServer:
    def register(server: grpc.aio.Server) -> None:
        worker_pb2_grpc.add_WorkerServicer_to_server(WorkerServicer(provider, settings), server)

    return await start_grpc_server(
        listen or settings.grpc_listen,
        register,
        [SERVICE_NAME],
        policy=settings.server_policy(),
    )
