"""GET /v1/models: one model per team (``agentmesh`` answers with the default team, ``agentmesh/<team>`` others)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dependencies import State
from gateway.edge.auth import CurrentPrincipal
from gateway.openai.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["openai"])


@router.get("/v1/models", responses={401: {"model": ErrorResponse}})
async def list_models(_: CurrentPrincipal, state: State) -> ModelList:
    # The agents' backends are theirs to choose (one may be offline, another Claude): the gateway does not know.
    return ModelList(
        data=[ModelCard(id=model, created=state.started_at, owned_by="agentmesh") for model in state.models.ids()]
    )
