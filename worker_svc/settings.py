"""Worker configuration, from the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agentmesh.settings import DEFAULT_WORKER_MODEL, GrpcServiceSettings, ProviderName


class WorkerSettings(GrpcServiceSettings):
    agent: ClassVar[str] = "worker"
    grpc_listen: str = "127.0.0.1:50052"
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    worker_provider: ProviderName | None = Field(default=None, description="overrides LLM_PROVIDER")
    worker_model: str = DEFAULT_WORKER_MODEL
    worker_max_tokens: int = Field(default=2048, ge=1, le=64_000)
