"""GET /v1/models: the one model the service offers."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.auth import CurrentPrincipal
from gateway.dependencies import State
from gateway.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["openai"])


@router.get("/v1/models", response_model_exclude_none=True, responses={401: {"model": ErrorResponse}})
async def list_models(_: CurrentPrincipal, state: State) -> ModelList:
    settings = state.settings
    card = ModelCard(id=settings.service_model_name, created=state.started_at, owned_by="agentmesh")
    if settings.provider == "offline":
        card.owned_by = "agentmesh-offline-demo"
        card.description = "offline demo model: deterministic, no LLM calls"
    return ModelList(data=[card])
