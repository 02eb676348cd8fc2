"""GET /v1/models: the one model the service offers."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dependencies import State
from gateway.edge.auth import CurrentPrincipal
from gateway.openai.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["openai"])


@router.get("/v1/models", responses={401: {"model": ErrorResponse}})
async def list_models(_: CurrentPrincipal, state: State) -> ModelList:
    # The agents' backends are theirs to choose (one may be offline, another Claude): the gateway does not know.
    card = ModelCard(id=state.settings.service_model_name, created=state.started_at, owned_by="agentmesh")
    return ModelList(data=[card])
