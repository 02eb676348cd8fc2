"""Pure-ASGI middleware: browser-hardening headers on every response, and ``no-store`` on everything under /v1."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.paths import is_protected

# The API serves JSON and event streams, never a page: nothing may load, frame or be framed.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# The run inspector (/inspect): its own script, style, icon and API only; no inline code, nothing from elsewhere.
INSPECTOR_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def security_headers(hsts_max_age: int) -> dict[str, str]:
    """Headers for every response (HSTS only when configured: it binds browsers to HTTPS for max-age)."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    if hsts_max_age > 0:
        headers["Strict-Transport-Security"] = f"max-age={hsts_max_age}; includeSubDomains"
    return headers


class SecurityHeadersMiddleware:
    """Adds the headers to the response start only, so streamed bodies pass through untouched.

    The CSP is left off HTML (FastAPI's /docs page loads its script from a CDN); completions and every other
    /v1 answer are per-user and get ``Cache-Control: no-store``, replacing an event stream's ``no-cache``.
    """

    def __init__(self, app: ASGIApp, hsts_max_age: int) -> None:
        self.app = app
        self.headers = security_headers(hsts_max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = is_protected(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(self.headers)
                if not headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = JSON_CSP
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
