"""Builds the FastAPI app: the edge middleware, error handlers, routes, and the orchestrator channel's lifetime."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware.cors import CORSMiddleware

from agentmesh.request_context import REQUEST_ID_HEADER
from agentmesh.rpc.channel import create_channel
from gateway.dependencies import GatewayState
from gateway.edge.auth import AuthMiddleware, TokenVerifier
from gateway.edge.rate_limit import (
    RateLimiter,
    RateLimitMiddleware,
    StreamConcurrencyMiddleware,
    unauthenticated_ip,
    verified_ip,
    verified_subject,
)
from gateway.edge.run_slots import RunSlots
from gateway.http.access_log import AccessLogMiddleware
from gateway.http.body_limit import BodySizeLimitMiddleware
from gateway.http.framing import AmbiguousFramingMiddleware
from gateway.http.head import HeadAsGetMiddleware
from gateway.http.metrics import HttpMetricsMiddleware
from gateway.http.request_id import RequestIdMiddleware
from gateway.http.security_headers import JSON_CSP, SecurityHeadersMiddleware, security_headers
from gateway.openai import models
from gateway.openai.chat import router as chat
from gateway.openai.chat.serving import ChatServing
from gateway.openai.errors import error_responses, install_error_handlers, service_unavailable
from gateway.openai.responses import router as responses
from gateway.openai.responses.serving import ResponsesServing
from gateway.openai.responses.store import ResponseStoreUnavailable
from gateway.openai.responses.store_factory import response_store
from gateway.openai.teams import TeamModels
from gateway.operations import health, metrics
from gateway.orchestrator_client import ORCHESTRATOR_SERVICE, OrchestratorClient
from gateway.runs import inspector
from gateway.runs import router as runs
from gateway.runs.history import RunHistory
from gateway.settings import GatewaySettings
from gateway.spend.control import LOWERED_HEADER, REMAINING_USD_HEADER, SpendControl
from gateway.spend.store import spend_store

logger = logging.getLogger(__name__)

# What the edge middleware may answer on any /v1 route, before the route runs.
EDGE_RESPONSES = error_responses(401, 413, 429, 503)
CORS_EXPOSED_HEADERS = [
    REQUEST_ID_HEADER,
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    REMAINING_USD_HEADER,
    LOWERED_HEADER,
]


def create_app(settings: GatewaySettings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    state = GatewayState(
        settings=settings,
        started_at=int(time.time()),
        runs=RunHistory(settings.run_history_size),
        models=TeamModels.load(settings),
    )
    slots = RunSlots(settings.max_concurrent_streams_per_user)
    limiter = (
        RateLimiter(
            settings.rate_limit_storage_uri,
            settings.rate_limit_chat_completions,
            settings.rate_limit_default,
            settings.rate_limit_per_ip,
        )
        if settings.rate_limit_enabled
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _log_edge(settings)
        if limiter is not None and not await limiter.reachable():
            logger.warning("rate limit storage is not reachable yet: /v1 requests get 503 until it is")
        channel = create_channel(settings.orchestrator_target, ORCHESTRATOR_SERVICE, tls=settings.grpc_tls)
        state.orchestrator = OrchestratorClient(channel, run_timeout_s=settings.request_timeout)
        store = spend_store(settings.rate_limit_storage_uri)
        spend = SpendControl(store, settings.max_cost_per_request_usd, settings.spend_limit_usd_per_day)
        state.chat = ChatServing(settings, state.orchestrator, spend, state.runs, state.models)
        responses_store = response_store(settings)
        state.responses = ResponsesServing(
            settings, state.orchestrator, spend, state.runs, state.models, responses_store, slots
        )
        following = asyncio.create_task(state.responses.follow_cancels())
        try:
            yield
        finally:
            await state.responses.drain(settings.shutdown_grace_period)
            following.cancel()
            await asyncio.wait({following})
            state.orchestrator = state.chat = state.responses = None
            await channel.close()
            await store.aclose()
            await responses_store.aclose()

    docs = settings.api_docs_enabled
    app = FastAPI(
        title="agentmesh",
        summary="OpenAI-compatible gateway of the agentmesh",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.gateway = state
    crash_headers = {**security_headers(settings.hsts_max_age), "Content-Security-Policy": JSON_CSP}
    install_error_handlers(app, crash_headers=crash_headers)
    app.add_exception_handler(ResponseStoreUnavailable, _store_unavailable)
    _add_edge_middleware(app, settings, limiter, slots)
    app.include_router(chat.router, responses=EDGE_RESPONSES)
    app.include_router(responses.router, responses=EDGE_RESPONSES)
    app.include_router(models.router, responses=EDGE_RESPONSES)
    app.include_router(runs.router, responses=EDGE_RESPONSES)
    app.include_router(inspector.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Added last, so it sits just inside the request-id middleware: edge refusals (401, 413, 429) count too.
    app.add_middleware(HttpMetricsMiddleware, known_paths=lambda: app.openapi()["paths"].keys())
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if tracer_provider is not None:
        # Excluded: probes and scrapes would drown the traces of real requests, and a span per ASGI message
        # (one per SSE chunk) would cost more than the request itself.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, excluded_urls="/health,/metrics", exclude_spans=["receive", "send"]
        )
    return app


def _add_edge_middleware(app: FastAPI, settings: GatewaySettings, limiter: RateLimiter | None, slots: RunSlots) -> None:
    """The last added is the outermost. A request meets, in order: request id (so every answer carries it),
    security headers, the framing check, CORS (preflights never need a token), the per-IP budget of requests that
    will fail authentication, authentication, the per-IP budget of verified requests, the per-subject budget, the
    open-completions cap, and the body limit; HEAD becomes GET last."""
    verifier = TokenVerifier(settings)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_size)
    if settings.max_concurrent_streams_per_user:
        app.add_middleware(StreamConcurrencyMiddleware, slots=slots)
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter, kind="subject", identify=verified_subject)
        app.add_middleware(RateLimitMiddleware, limiter=limiter, kind="ip", identify=verified_ip)
    app.add_middleware(AuthMiddleware, verifier=verifier)
    if limiter is not None:
        app.add_middleware(
            RateLimitMiddleware, limiter=limiter, kind="unauthenticated", identify=unauthenticated_ip(verifier)
        )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "DELETE"],
            # Bearer tokens, never cookies: any request header is safe to allow without credentials.
            allow_headers=["*"],
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(AmbiguousFramingMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age=settings.hsts_max_age)


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    logger.error("response store failed: %s", exc)
    return service_unavailable("the response store is unavailable", "response_store_unavailable").response()


def _log_edge(settings: GatewaySettings) -> None:
    # The storage URI may hold a Redis password: log its scheme only.
    logger.info(
        "edge configured",
        extra={
            "jwt_algorithm": settings.jwt_algorithm,
            "rate_limits": (
                f"chat {settings.rate_limit_chat_completions}, other {settings.rate_limit_default}, "
                f"per IP {settings.rate_limit_per_ip}, "
                f"in {settings.rate_limit_storage_uri.partition('://')[0]}"
                if settings.rate_limit_enabled
                else "off"
            ),
            "max_concurrent_streams_per_user": settings.max_concurrent_streams_per_user,
            "max_background_runs_per_user": settings.max_background_runs_per_user,
            "responses_store": settings.responses_store_uri.partition("://")[0],
            "max_cost_per_request_usd": settings.max_cost_per_request_usd,
            "spend_limit_usd_per_day": settings.spend_limit_usd_per_day,
            "cors_allow_origins": settings.cors_allow_origins,
            "trust_proxy_headers": settings.trust_proxy_headers,
        },
    )
