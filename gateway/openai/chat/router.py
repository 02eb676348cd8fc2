"""POST /v1/chat/completions: the route, handed to the app's one ``ChatServing``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.dependencies import Chat
from gateway.edge.auth import CurrentPrincipal
from gateway.http.strict_json import StrictJsonRoute
from gateway.openai.errors import error_responses
from gateway.openai.protocol import ChatCompletion, ChatCompletionRequest

router = APIRouter(tags=["openai"], route_class=StrictJsonRoute)

# One server-sent event (OpenAPI before 3.2 describes a stream by its events).
_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "description": "a chunk or an {error} as JSON, or [DONE]"}},
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "one chat.completion, or with stream: true chat.completion.chunk events ending in [DONE]",
        "content": {"text/event-stream": {"schema": _EVENT}},
    },
    **error_responses(400, 404, 422, 429, 502, 503, 504),
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, principal: CurrentPrincipal, chat: Chat
) -> Response:
    return await chat.create(body, principal.subject, request)
