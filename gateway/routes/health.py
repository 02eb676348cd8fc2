"""Liveness (the process answers) and readiness (the orchestrator is SERVING)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dependencies import Orchestrator
from gateway.errors import RETRY_AFTER_SECONDS, ApiError
from gateway.protocol import ErrorResponse

router = APIRouter(tags=["health"])


@router.get("/health")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"model": ErrorResponse}})
async def ready(orchestrator: Orchestrator) -> dict[str, str]:
    if not await orchestrator.ready():
        raise ApiError(
            503,
            "the orchestrator is not serving",
            "service_unavailable_error",
            code="orchestrator_not_ready",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return {"status": "ready"}
