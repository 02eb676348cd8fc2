"""Pure-ASGI middleware: a request framed both by Transfer-Encoding and Content-Length is refused (RFC 9112 6.3)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.openai.errors import ApiError


class AmbiguousFramingMiddleware:
    """Servers and proxies disagree about where such a body ends, and what one takes for body the other serves as
    a second request (request smuggling). RFC 9112 lets a server refuse it; we do, and close the connection, so
    whatever follows the body is never read as a request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if "transfer-encoding" in headers and "content-length" in headers:
                error = ApiError(
                    400,
                    "a request may carry Transfer-Encoding or Content-Length, not both",
                    "invalid_request_error",
                    code="ambiguous_framing",
                    headers={"Connection": "close"},
                )
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
