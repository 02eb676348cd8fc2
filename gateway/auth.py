"""JWT bearer authentication: a pure-ASGI check on every /v1 request, read by routes as ``CurrentPrincipal``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ApiError
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

PROTECTED_PREFIX = "/v1/"
# Documents the scheme in OpenAPI; AuthMiddleware has verified the token before any route runs.
_bearer = HTTPBearer(auto_error=False, description="a JWT signed for this gateway; `sub` names the caller")


@dataclass(frozen=True)
class Principal:
    subject: str
    claims: dict[str, Any]


def unauthorized(message: str, *, invalid_token: bool) -> ApiError:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ApiError(
        401, message, "authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": challenge}
    )


class TokenVerifier:
    """Checks signature (only the configured algorithm: no ``none``, no HS/RS confusion), expiry, ``nbf``,
    ``sub``, and ``aud``/``iss`` when configured."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._key = settings.jwt_verification_key()
        self._algorithm = settings.jwt_algorithm
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <JWT>`` header value; raises a 401 ApiError otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'", invalid_token=False)
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired", invalid_token=True) from None
        except jwt.PyJWTError as exc:
            logger.info("rejected token", extra={"reason": str(exc)})
            raise unauthorized(f"invalid token: {exc}", invalid_token=True) from None
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise unauthorized("invalid token: 'sub' must be a non-empty string", invalid_token=True)
        return Principal(subject=claims["sub"], claims=claims)


def route_path(scope: Scope) -> str:
    """The path routes match against (without a ``root_path`` prefix)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def is_protected(scope: Scope) -> bool:
    return route_path(scope).startswith(PROTECTED_PREFIX)


class AuthMiddleware:
    """Rejects any /v1 request without a valid token before its body is read, and keeps the principal in
    ``scope["state"]`` for the rate limiter and ``CurrentPrincipal``.

    A middleware rather than only a dependency: no /v1 route can be left open by a forgotten parameter, and
    neither the body limit nor JSON parsing is spent on unauthenticated callers.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope):
            await self.app(scope, receive, send)
            return
        try:
            principal = self.verifier.verify(Headers(scope=scope).get("authorization"))
        except ApiError as error:
            await error.response()(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def principal_of(scope: Scope) -> Principal | None:
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


async def _principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    # Fails closed should a route requiring a principal ever be mounted outside the middleware's prefix.
    principal = principal_of(request.scope)
    if principal is None:
        raise unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'", invalid_token=False)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
