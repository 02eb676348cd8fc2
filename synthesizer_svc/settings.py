"""Synthesizer configuration, from the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agentmesh.settings import DEFAULT_WORKER_MODEL, GrpcServiceSettings, ProviderName


class SynthesizerSettings(GrpcServiceSettings):
    agent: ClassVar[str] = "synthesizer"
    grpc_listen: str = "127.0.0.1:50053"
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    synthesizer_provider: ProviderName | None = Field(default=None, description="overrides LLM_PROVIDER")
    synthesizer_model: str = DEFAULT_WORKER_MODEL
    synthesizer_max_tokens: int = Field(default=4096, ge=1, le=64_000)
