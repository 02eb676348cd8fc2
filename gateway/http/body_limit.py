"""Pure-ASGI middleware: request bodies over MAX_REQUEST_BODY_SIZE get 413 in OpenAI's error shape."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.openai.errors import ApiError


class BodySizeLimitMiddleware:
    """Rejects a too-large Content-Length before reading; counts chunked bodies as they arrive.

    A chunked body that grows too large raises the 413 ApiError (an HTTPException) from ``receive``;
    FastAPI re-raises HTTPExceptions from its body parsing, so the app's handler still answers it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large().response()(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            f"request body is larger than MAX_REQUEST_BODY_SIZE ({self.max_bytes} bytes)",
            "invalid_request_error",
            code="request_too_large",
        )
