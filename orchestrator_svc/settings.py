"""Orchestrator configuration, from the environment."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agentmesh.settings import GrpcServiceSettings, OrchestratorRole, SynthesizerRole, WorkerRole


# The worker's and synthesizer's roles too: their defaults price a team's specialists and synthesis for the cost cap.
class OrchestratorSettings(GrpcServiceSettings, OrchestratorRole, WorkerRole, SynthesizerRole):
    agent: ClassVar[str] = "orchestrator"
    grpc_listen: str = "127.0.0.1:50051"
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # Its input is the chat conversation: the gateway's MAX_TOTAL_CHARS, for callers that skip the gateway.
    max_input_chars: int = Field(default=400_000, ge=1)
    worker_target: str = "localhost:50052"
    synthesizer_target: str = "localhost:50053"
    worker_targets: str = Field(
        default="", description="name=target pairs, comma-separated; *=target for the rest (else WORKER_TARGET)"
    )
    # The gateway's caps, read here too (make run and the manifests give both the same values): under a cap every
    # model of every team must be priced, and an unpriced one stops start-up instead of failing each request.
    max_cost_per_request_usd: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="US dollars")
    spend_limit_usd_per_day: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="US dollars")
    max_subtasks: int = Field(default=8, ge=1, le=256)
    planning_timeout: float = Field(default=30.0, gt=0, description="seconds")
    worker_coordination_timeout: float = Field(default=45.0, gt=0, description="seconds")
    synthesis_timeout: float = Field(default=30.0, gt=0, description="seconds")
    on_coordination_timeout: Literal["synthesize", "fail"] = Field(
        default="synthesize", description="synthesize what is done when the coordination budget runs out, or fail"
    )
    fail_fast: bool = False
    prompt_cache: bool = Field(
        default=True,
        description="a run's worker prompts share one cached prefix, written by one call before the others start",
    )
    health_poll_interval: float = Field(default=2.0, gt=0, description="seconds between downstream health checks")
