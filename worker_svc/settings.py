"""Worker configuration, from the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agentmesh.settings import GrpcServiceSettings, WorkerRole
from agentmesh.tools import ToolSettings


class WorkerSettings(GrpcServiceSettings, WorkerRole, ToolSettings):
    agent: ClassVar[str] = "worker"
    grpc_listen: str = "127.0.0.1:50052"
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    worker_agents: str = Field(
        default="",
        description="comma-separated specialists this process serves (name, or team/name); empty: every one",
    )
