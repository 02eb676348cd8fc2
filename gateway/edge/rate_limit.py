"""Moving-window rate limits per client IP and per verified JWT subject, and a per-subject cap on open completions.

A client IP has two budgets of RATE_LIMIT_PER_IP: one its verified requests spend, and one for requests that fail
authentication, so anonymous floods are stopped without locking out the users behind that IP (a NAT, a proxy, a
server such as Open WebUI). Each verified subject has its own budget besides.

Budgets live in a ``limits`` storage: ``memory://`` counts per gateway process, ``redis://`` is one budget shared
by every replica. The concurrency cap is always per process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentmesh import metrics
from gateway.edge.auth import TokenVerifier
from gateway.edge.identity import client_ip, principal_of, subject_key
from gateway.edge.run_slots import RunSlots
from gateway.http.paths import is_protected, route_path
from gateway.openai.errors import ApiError, service_unavailable

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
# The routes that start a run: they spend RATE_LIMIT_CHAT_COMPLETIONS.
RUN_PATHS = (CHAT_PATH, "/v1/responses")
IP_KINDS = ("ip", "unauthenticated")
_WHO = {"ip": "client IP", "unauthenticated": "client IP's unauthenticated requests", "subject": "token subject"}
# A slow Redis must not hold requests: fail within a second (and answer 503) rather than hang.
_REDIS_OPTIONS: dict[str, float | str | bool] = {
    "implementation": "redispy",
    "socket_connect_timeout": 1.0,
    "socket_timeout": 1.0,
}


@dataclass(frozen=True)
class Quota:
    """One budget after spending a request from it."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # whole seconds until the oldest request in the window leaves it (one more fits)
    rule: str  # e.g. "60 per 1 minute"

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_after),
        }


class RateLimiter:
    """Per subject: RATE_LIMIT_CHAT_COMPLETIONS for the routes that start runs, RATE_LIMIT_DEFAULT for every
    other /v1 route; per client IP: RATE_LIMIT_PER_IP for every /v1 route."""

    def __init__(self, storage_uri: str, chat: str, default: str, per_ip: str) -> None:
        options = {} if storage_uri.startswith("memory") else _REDIS_OPTIONS
        storage = storage_from_string(f"async+{storage_uri}", wrap_exceptions=True, **options)
        assert isinstance(storage, AsyncStorage)  # the async+ scheme picks the asyncio implementation
        self._storage = storage
        self._window = MovingWindowRateLimiter(storage)
        self._chat = parse_many(chat)
        self._default = parse_many(default)
        self._per_ip = parse_many(per_ip)

    async def reachable(self) -> bool:
        try:
            return await self._storage.check()
        except Exception:
            return False

    async def hit(self, path: str, kind: str, identity: str) -> Quota:
        """Spends one request from every budget of ``path``; returns the refusing one, else the tightest."""
        if kind in IP_KINDS:
            bucket, items = "ip", self._per_ip
        else:
            bucket, items = ("chat", self._chat) if path in RUN_PATHS else ("default", self._default)
        tightest: Quota | None = None
        for item in items:
            quota = await self._spend(item, bucket, kind, identity)
            if not quota.allowed:
                return quota
            if tightest is None or quota.remaining < tightest.remaining:
                tightest = quota
        assert tightest is not None  # parse_many never returns an empty list
        return tightest

    async def _spend(self, item: RateLimitItem, *identifiers: str) -> Quota:
        allowed = await self._window.hit(item, *identifiers)
        reset_at, remaining = await self._window.get_window_stats(item, *identifiers)
        reset_after = max(1, math.ceil(reset_at - time.time()))
        return Quota(allowed, item.amount, max(0, remaining), reset_after, str(item))


def verified_ip(scope: Scope) -> str | None:
    return client_ip(scope) if principal_of(scope) is not None else None


def unauthenticated_ip(verifier: TokenVerifier) -> Callable[[Scope], str | None]:
    """Names the client IP of a request whose token will fail authentication, before AuthMiddleware answers 401."""

    def identify(scope: Scope) -> str | None:
        try:
            verifier.verify(Headers(scope=scope).get("authorization"))
        except ApiError:
            return client_ip(scope)
        return None

    return identify


def verified_subject(scope: Scope) -> str | None:
    """Only AuthMiddleware puts a principal in scope, so this never sees an unverified ``sub``."""
    principal = principal_of(scope)
    if principal is None:
        return None
    return subject_key(principal.subject)


class RateLimitMiddleware:
    """Spends one request of the caller's budget before the route runs, and answers 429 once it is gone.

    ``identify`` names the caller (client IP, or verified subject). Every answer carries the X-RateLimit-*
    headers of the tightest budget any limiter on the way saw.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter, kind: str, identify: Callable[[Scope], str | None]) -> None:
        self.app = app
        self.limiter = limiter
        self.kind = kind
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = self.identify(scope) if scope["type"] == "http" and is_protected(scope) else None
        if identity is None:
            await self.app(scope, receive, send)
            return
        try:
            quota = await self.limiter.hit(route_path(scope), self.kind, identity)
        except StorageError as exc:
            logger.error("rate limit storage failed: %s", exc.storage_error, extra={"limit_kind": self.kind})
            await _storage_unavailable().response()(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                seen = headers.get("x-ratelimit-remaining")
                if seen is None or not seen.isdigit() or int(seen) > quota.remaining:
                    headers.update(quota.headers())
            await send(message)

        if not quota.allowed:
            logger.info("rate limited", extra={"limit_kind": self.kind, "status": 429})
            metrics.rate_limit_rejections.labels(self.kind).inc()
            await self._refusal(quota).response()(scope, receive, send_with_quota)
            return
        await self.app(scope, receive, send_with_quota)

    def _refusal(self, quota: Quota) -> ApiError:
        who = _WHO[self.kind]
        return ApiError(
            429,
            f"rate limit reached for this {who} ({quota.rule}); retry after {quota.reset_after} s",
            "rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(quota.reset_after)},
        )


def _storage_unavailable() -> ApiError:
    # Fail closed: an unreachable budget must not turn into unlimited model spending.
    return service_unavailable("the rate limiter's storage is unavailable", "rate_limiter_unavailable")


class StreamConcurrencyMiddleware:
    """At most MAX_CONCURRENT_STREAMS_PER_USER open chat completions per verified subject, in ``slots`` (which
    responses share, background ones included).

    Streamed or not: a non-streamed completion holds the same run, and counting it keeps the cap from being
    sidestepped with ``stream: false``. The slot is held until the response has been sent or abandoned.
    """

    def __init__(self, app: ASGIApp, slots: RunSlots) -> None:
        self.app = app
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope) if scope["type"] == "http" and route_path(scope) == CHAT_PATH else None
        if principal is None:
            await self.app(scope, receive, send)
            return
        subject = principal.subject
        try:
            self.slots.take(subject)
        except ApiError as refusal:
            await refusal.response()(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.give_back(subject)
