"""JWT bearer authentication: a pure-ASGI check on every /v1 request, read by routes as ``CurrentPrincipal``."""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.edge.identity import Principal, principal_of
from gateway.http.paths import is_protected
from gateway.openai.errors import ApiError
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

MAX_SUBJECT_LENGTH = 256
SUBJECT_RULE = f"the subject (sub) must be a string of 1 to {MAX_SUBJECT_LENGTH} printable characters"
# Documents the scheme in OpenAPI; AuthMiddleware has verified the token before any route runs.
_bearer = HTTPBearer(auto_error=False, description="a JWT signed for this gateway; `sub` names the caller")


def unauthorized(message: str, *, invalid_token: bool, invalid_request: bool = False) -> ApiError:
    """A 401 with RFC 6750's challenge: ``invalid_token`` for a token we refused, ``invalid_request`` for a
    malformed Authorization."""
    challenge = "Bearer"
    if invalid_token:
        challenge = 'Bearer error="invalid_token"'
    elif invalid_request:
        challenge = 'Bearer error="invalid_request"'
    return ApiError(
        401, message, "authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": challenge}
    )


class TokenRejected(Exception):
    """A token we refuse: ``reason`` is a stable code for clients and logs, ``text`` our own words for it."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(f"{text} (reason: {reason})")
        self.reason = reason
        self.text = text


# PyJWT's exceptions, most specific first, as (reason, our words): its own messages are never shown to callers.
_PYJWT_REASONS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.InvalidAlgorithmError, "wrong_algorithm", "not signed with the algorithm this service accepts"),
    (jwt.InvalidSignatureError, "bad_signature", "the signature does not match"),
    (jwt.InvalidAudienceError, "wrong_audience", "wrong audience (aud)"),
    (jwt.InvalidIssuerError, "wrong_issuer", "wrong issuer (iss)"),
    (jwt.exceptions.InvalidSubjectError, "bad_subject", SUBJECT_RULE),
    (jwt.DecodeError, "malformed", "not a well-formed JWT"),
)


def _reason_for(exc: Exception) -> TokenRejected:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return TokenRejected("missing_claim", f"required claim missing: {exc.claim}")
    for kind, reason, text in _PYJWT_REASONS:
        if isinstance(exc, kind):
            return TokenRejected(reason, text)
    if isinstance(exc, jwt.PyJWTError):
        return TokenRejected("invalid", "refused")
    return TokenRejected("malformed", "not a well-formed JWT")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """RFC 7519's NumericDate: a JSON number of seconds. Strings, booleans and numbers beyond a float are refused
    (PyJWT would read ``"exp": "99999999999"`` as a number, and ``exp: 10^400`` as a token that never expires)."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("bad_claim", f"the {name} claim must be a number of seconds since the epoch")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise TokenRejected("bad_claim", f"the {name} claim is out of range")
    return seconds


class TokenVerifier:
    """Checks signature (only the configured algorithm: no ``none``, no HS/RS confusion), ``aud``/``iss`` when
    configured, the times (``exp`` required, ``nbf``, ``iat``, within ``JWT_LEEWAY``), a lifetime of at most
    ``JWT_MAX_LIFETIME``, and a ``sub`` fit to log and to key rate limits by."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._key = settings.jwt_verification_key()
        self._algorithm = settings.jwt_algorithm
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._max_lifetime = settings.jwt_max_lifetime
        self._leeway = settings.jwt_leeway

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <JWT>`` header value; raises a 401 ApiError otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'", invalid_token=False)
        try:
            claims = self._claims(token.strip())
        except TokenRejected as rejected:
            raise unauthorized(f"invalid token: {rejected}", invalid_token=True) from None
        return Principal(subject=claims["sub"], claims=claims)

    def _claims(self, token: str) -> dict[str, Any]:
        try:
            # PyJWT checks the signature, aud and iss; the times are checked below, where their types are too.
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp"], "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
            self._check_times(claims)
            _check_subject(claims["sub"])
        except (jwt.PyJWTError, TokenRejected, ValueError, TypeError, OverflowError, RecursionError) as exc:
            rejected = exc if isinstance(exc, TokenRejected) else _reason_for(exc)
            # The library's own words (and any detail) go to the log only: they help an operator, not a prober.
            logger.info("rejected token", extra={"reason": rejected.reason, "detail": str(exc)})
            raise rejected from None
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now, leeway = time.time(), self._leeway
        exp, nbf, iat = (_numeric_date(claims, name) for name in ("exp", "nbf", "iat"))
        assert exp is not None  # required above
        if exp <= now - leeway:
            raise TokenRejected("token_expired", "expired")
        if (nbf is not None and nbf > now + leeway) or (iat is not None and iat > now + leeway):
            raise TokenRejected("not_yet_valid", "not yet valid (nbf or iat lies in the future)")
        lifetime = exp - iat if iat is not None else exp - now - leeway
        if lifetime > self._max_lifetime:
            raise TokenRejected(
                "lifetime_too_long",
                f"lives longer than this service accepts ({self._max_lifetime} s, JWT_MAX_LIFETIME)",
            )


def _check_subject(subject: Any) -> None:
    """``sub`` names the caller in logs and rate-limit keys: a bounded, printable string."""
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH or not subject.isprintable():
        raise TokenRejected("bad_subject", SUBJECT_RULE)


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
            principal = self.verifier.verify(_one_authorization(Headers(scope=scope)))
        except ApiError as error:
            await error.response()(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _one_authorization(headers: Headers) -> str | None:
    """The Authorization header; two of them are refused rather than one picked (proxies disagree on which)."""
    values = headers.getlist("authorization")
    if len(values) > 1:
        raise unauthorized(
            f"send one Authorization header (got {len(values)})", invalid_token=False, invalid_request=True
        )
    return values[0] if values else None


async def current_principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    # Fails closed should a route requiring a principal ever be mounted outside the middleware's prefix.
    principal = principal_of(request.scope)
    if principal is None:
        raise unauthorized("missing bearer token: send 'Authorization: Bearer <JWT>'", invalid_token=False)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
