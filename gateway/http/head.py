"""Pure-ASGI middleware: HEAD is answered as GET without a body (RFC 9110 9.3.2), on every GET route."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """Availability checkers probe with HEAD; FastAPI's routes answer it with 405 unless each declares it.

    Sits innermost, so the edge (auth, rate limits, metrics, logs) sees the real method. The headers are the
    GET's, Content-Length included; the body is dropped here, whatever the server does with it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
