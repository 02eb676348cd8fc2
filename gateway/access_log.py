"""Pure-ASGI middleware: one access log line per request, with the path but never the query string."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gateway.access")


class AccessLogMiddleware:
    """Replaces uvicorn's access log, which writes the query string: a token sent as ``?access_token=`` would
    land in the log. Logged when the response ends (streams too), so the line carries the duration.

    The path is the raw one, still percent-encoded: a ``%0A`` in it cannot start a forged log line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # what the server answers if the app fails before starting a response

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            client = scope.get("client")
            path = scope.get("raw_path") or scope["path"].encode()
            fields = {
                "client": f"{client[0]}:{client[1]}" if client else "-",
                "method": scope["method"],
                "path": path.decode("ascii", "backslashreplace"),
                "status": status,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            logger.info(
                '%s - "%s %s HTTP/%s" %d',
                fields["client"],
                fields["method"],
                fields["path"],
                scope.get("http_version", "1.1"),
                status,
                extra=fields,
            )
