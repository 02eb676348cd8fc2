"""Counts and times every HTTP request by route template and method (never raw values), streams until their end."""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from agentmesh import metrics
from gateway.http.observed_response import ObservedResponse

# RFC 9110's methods: anything else a client sends is one `other` value, not a new time series per made-up method.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


class HttpMetricsMiddleware:
    """Pure ASGI: observes the status line and the end of the body, buffers nothing."""

    def __init__(self, app: ASGIApp, known_paths: Callable[[], Collection[str]]) -> None:
        self.app = app
        self._known_paths = known_paths
        self._known: frozenset[str] | None = None

    def _route(self, scope: Scope) -> str:
        # Read on first use: FastAPI includes routers lazily, so the paths exist only once the app is built.
        if self._known is None:
            self._known = frozenset(self._known_paths())
        path = scope.get("path", "")
        return path if path in self._known else metrics.OTHER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        observed = ObservedResponse(send)
        try:
            await self.app(scope, receive, observed.send)
        finally:
            route, method = self._route(scope), metrics.bounded(scope["method"], HTTP_METHODS)
            metrics.http_requests.labels(route, method, str(observed.status)).inc()
            metrics.http_duration.labels(route, method).observe(observed.seconds)
