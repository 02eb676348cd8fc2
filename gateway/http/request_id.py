"""Pure-ASGI middleware: one request id per HTTP request, in the ContextVar and echoed on every response."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentmesh.request_context import (
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_var,
    sane_request_id,
    unique_request_id,
)

_ECHOED = "echoed_request_id"


def echoed_request_id(scope: Scope) -> str | None:
    """The id this request's answers carry, for an answer written outside the middleware (the 500 handler)."""
    echoed = scope.get("state", {}).get(_ECHOED)
    return echoed if isinstance(echoed, str) else None


class RequestIdMiddleware:
    """Gives every request a unique id, and answers with the id the client will recognise.

    A sane client ``X-Request-ID`` is echoed unchanged, and the request's own id (in logs, gRPC metadata,
    upstream calls and ``chatcmpl-<id>``) is that id with a random suffix: clients cannot make two requests
    share one. Without a sane client id, one is generated and echoed.

    The ContextVar is deliberately not reset: each request runs in its own task, and the error handler
    for unhandled exceptions runs outside this middleware yet still needs the id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = sane_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        request_id = unique_request_id(client_id) if client_id else new_request_id()
        request_id_var.set(request_id)
        echoed = client_id or request_id
        scope.setdefault("state", {})[_ECHOED] = echoed

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = echoed
            await send(message)

        await self.app(scope, receive, send_with_id)
