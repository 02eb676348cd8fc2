"""`python -m gateway`: serve the OpenAI-compatible API on API_HOST:API_PORT until SIGTERM or SIGINT."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

from agentmesh.logging import configure_logging
from agentmesh.settings import load_settings
from agentmesh.telemetry import configure_tracing, shutdown_tracing
from gateway.app import create_app
from gateway.routes.health import mark_draining
from gateway.settings import GatewaySettings


class DrainingServer(uvicorn.Server):
    """uvicorn, with readiness turning 503 as soon as a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        mark_draining(self._app)
        super().handle_exit(sig, frame)


def uvicorn_config(app: FastAPI, settings: GatewaySettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        # Keep the shared logging setup: uvicorn's loggers propagate to it.
        log_config=None,
        ws="none",
        # The client IP (per-IP rate limits) is the socket peer unless TRUST_PROXY_HEADERS names proxies to believe.
        proxy_headers=settings.trust_proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # On SIGTERM uvicorn stops accepting, lets in-flight requests finish within the grace period,
        # then runs the lifespan's shutdown, which closes the orchestrator channel.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_period)),
    )


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level, settings.log_format)
    app = create_app(settings, tracer_provider=configure_tracing("gateway", settings))
    try:
        DrainingServer(uvicorn_config(app, settings), app).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
