"""The Responses API routes, handed to the app's one ``ResponsesServing``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from gateway.dependencies import Responses
from gateway.edge.auth import CurrentPrincipal
from gateway.http.strict_json import StrictJsonRoute
from gateway.openai.errors import error_responses
from gateway.openai.responses.protocol import ResponseRequest

router = APIRouter(tags=["openai"], route_class=StrictJsonRoute)

_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "description": "the event's type, e.g. response.output_text.delta"},
        "data": {"type": "string", "description": "the event as JSON, with its sequence_number"},
    },
}
_RESPONSE = {"type": "object", "description": "OpenAI's response object (status, output, usage with cost_usd)"}
_ONE_OR_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the response object, or with stream: true its events",
        "content": {"application/json": {"schema": _RESPONSE}, "text/event-stream": {"schema": _EVENT}},
    },
}


@router.post("/v1/responses", responses={**_ONE_OR_STREAM, **error_responses(400, 404, 422, 429, 502, 503, 504)})
async def create_response(
    body: ResponseRequest, request: Request, principal: CurrentPrincipal, responses: Responses
) -> Response:
    return await responses.create(body, principal.subject, request)


@router.get("/v1/responses/{response_id}", responses={**_ONE_OR_STREAM, **error_responses(404, 422)})
async def retrieve_response(
    response_id: str,
    principal: CurrentPrincipal,
    responses: Responses,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=-1, description="the sequence number to resume after")] = None,
) -> Response:
    return await responses.retrieve(principal.subject, response_id, stream, starting_after)


@router.post("/v1/responses/{response_id}/cancel", responses=error_responses(400, 404))
async def cancel_response(response_id: str, principal: CurrentPrincipal, responses: Responses) -> JSONResponse:
    return JSONResponse(await responses.cancel(principal.subject, response_id))


@router.delete("/v1/responses/{response_id}", responses=error_responses(404))
async def delete_response(response_id: str, principal: CurrentPrincipal, responses: Responses) -> JSONResponse:
    return JSONResponse(await responses.delete(principal.subject, response_id))
