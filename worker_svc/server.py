"""Builds the worker's gRPC server; tests call it with ``listen="127.0.0.1:0"``."""

from __future__ import annotations

import grpc

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, start_grpc_server
from agentmesh.rpc.tool_health import report_tool_servers
from agentmesh.teams.loader import load_for
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import Teams
from agentmesh.tools import Toolbox
from agentmesh.v1 import worker_pb2, worker_pb2_grpc
from worker_svc.agents import Specialists
from worker_svc.servicer import WorkerServicer
from worker_svc.settings import WorkerSettings

SERVICE_NAME = worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name


async def start_worker(
    settings: WorkerSettings,
    provider: LLMProvider | TeamProviders,
    listen: str | None = None,
    teams: Teams | None = None,
    toolbox: Toolbox | None = None,
) -> GrpcServer:
    """``provider`` is the one WORKER_PROVIDER chooses, or the service's providers (those team files choose too).

    Without ``toolbox``, it opens one for the MCP servers of the specialists it serves (their stdio servers start
    as its children), and closes it once the server has stopped; a given one stays the caller's to close.
    """
    providers = provider if isinstance(provider, TeamProviders) else TeamProviders(provider, settings.provider)
    specialists = Specialists(teams or load_for(settings), providers, settings.worker_agents)
    owned = toolbox is None
    specialists.toolbox = toolbox or await Toolbox.open(specialists.specs(), settings)

    def register(server: grpc.aio.Server) -> None:
        worker_pb2_grpc.add_WorkerServicer_to_server(WorkerServicer(specialists, settings), server)

    try:
        running = await start_grpc_server(
            listen or settings.grpc_listen,
            register,
            [SERVICE_NAME],
            policy=settings.server_policy(),
        )
    except BaseException:
        if owned:
            await specialists.toolbox.aclose()
        raise
    await report_tool_servers(running.health, specialists.toolbox)
    if owned:
        running.on_close.append(specialists.toolbox.aclose)
    return running
