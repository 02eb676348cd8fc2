"""JWT bearer authentication as the ``CurrentPrincipal`` dependency (HS256 with JWT_SECRET_KEY)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.dependencies import Settings
from gateway.errors import ApiError

logger = logging.getLogger(__name__)

# auto_error=False: a missing header gets our OpenAI-shaped 401 rather than FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="a JWT signed with JWT_SECRET_KEY; `sub` names the caller")


@dataclass(frozen=True)
class Principal:
    subject: str
    claims: dict[str, Any]


def _unauthorized(message: str, *, invalid_token: bool) -> ApiError:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ApiError(
        401, message, "authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": challenge}
    )


async def _principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], settings: Settings
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'", invalid_token=False)
    try:
        claims = jwt.decode(
            credentials.credentials,
            settings.jwt_secret_key.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            options={"require": ["sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("token expired", invalid_token=True) from None
    except jwt.InvalidTokenError as exc:
        logger.info("rejected token", extra={"reason": str(exc)})
        raise _unauthorized(f"invalid token: {exc}", invalid_token=True) from None
    return Principal(subject=str(claims["sub"]), claims=claims)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
