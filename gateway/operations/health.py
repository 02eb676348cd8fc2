"""Liveness (the process answers) and readiness (the orchestrator is SERVING and the gateway is not draining)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request

from gateway.dependencies import Orchestrator
from gateway.openai.errors import service_unavailable
from gateway.openai.protocol import ErrorResponse

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
        raise service_unavailable("the gateway is shutting down", "draining")
    if not await orchestrator.ready():
        raise service_unavailable("the orchestrator is not serving", "orchestrator_not_ready")
    return {"status": "ready"}
