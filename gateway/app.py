"""Builds the FastAPI app: middleware, error handlers, routes, and the orchestrator channel's lifetime."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from agentmesh.rpc.channel import create_channel
from gateway.body_limit import BodySizeLimitMiddleware
from gateway.dependencies import GatewayState
from gateway.errors import install_error_handlers
from gateway.orchestrator_client import ORCHESTRATOR_SERVICE, OrchestratorClient
from gateway.request_id import RequestIdMiddleware
from gateway.routes import chat, health, models
from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    state = GatewayState(settings=settings, started_at=int(time.time()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        channel = create_channel(settings.orchestrator_target, ORCHESTRATOR_SERVICE)
        state.orchestrator = OrchestratorClient(channel, run_timeout=settings.request_timeout)
        try:
            yield
        finally:
            state.orchestrator = None
            await channel.close()

    app = FastAPI(title="agentmesh", summary="OpenAI-compatible gateway of the agentmesh", lifespan=lifespan)
    app.state.gateway = state
    install_error_handlers(app)
    # The last added is the outermost: every response, a 413 included, carries the request id.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_size)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(chat.router)
    app.include_router(models.router)
    app.include_router(health.router)
    return app
