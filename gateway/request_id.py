"""Pure-ASGI middleware: one request id per HTTP request, in the ContextVar and echoed on every response."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentmesh.request_context import REQUEST_ID_HEADER, new_request_id, request_id_var, sane_request_id


class RequestIdMiddleware:
    """Accepts a sane ``X-Request-ID`` or generates one.

    The ContextVar is deliberately not reset: each request runs in its own task, and the error handler
    for unhandled exceptions runs outside this middleware yet still needs the id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = sane_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER)) or new_request_id()
        request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
