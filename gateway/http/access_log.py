"""Pure-ASGI middleware: one access log line per request, with the path but never the query string."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.observed_response import ObservedResponse

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
        observed = ObservedResponse(send)
        try:
            await self.app(scope, receive, observed.send)
        finally:
            client = scope.get("client")
            path = scope.get("raw_path") or scope["path"].encode()
            fields = {
                "client": f"{client[0]}:{client[1]}" if client else "-",
                "method": scope["method"],
                "path": path.decode("ascii", "backslashreplace"),
                "status": observed.status,
                "duration_ms": round(observed.seconds * 1000, 1),
            }
            logger.info(
                '%s - "%s %s HTTP/%s" %d',
                fields["client"],
                fields["method"],
                fields["path"],
                scope.get("http_version", "1.1"),
                observed.status,
                extra=fields,
            )
