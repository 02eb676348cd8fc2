"""Liveness (the process answers) and readiness (the orchestrator is SERVING and the gateway is not draining)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request

from gateway.dependencies import Orchestrator
from gateway.errors import RETRY_AFTER_SECONDS, ApiError
from gateway.protocol import ErrorResponse

router = APIRouter(tags=["health"])


@router.get("/health")
async def live() -> dict[str, str]:
    return {"status": "ok"}


def mark_draining(app: FastAPI) -> None:
    """From the stop signal on, readiness says 503 while open streams finish."""
    app.state.draining = True


@router.get("/health/ready", responses={503: {"model": ErrorResponse}})
async def ready(request: Request, orchestrator: Orchestrator) -> dict[str, str]:
    if getattr(request.app.state, "draining", False):
        raise ApiError(
            503,
            "the gateway is shutting down",
            "service_unavailable_error",
            code="draining",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if not await orchestrator.ready():
        raise ApiError(
            503,
            "the orchestrator is not serving",
            "service_unavailable_error",
            code="orchestrator_not_ready",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return {"status": "ready"}
