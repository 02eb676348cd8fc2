"""Synthesizer configuration, from the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agentmesh.settings import GrpcServiceSettings, SynthesizerRole


class SynthesizerSettings(GrpcServiceSettings, SynthesizerRole):
    agent: ClassVar[str] = "synthesizer"
    grpc_listen: str = "127.0.0.1:50053"
    metrics_port: int = Field(default=9103, ge=0, le=65535)
