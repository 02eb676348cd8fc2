"""`python -m gateway`: serve the OpenAI-compatible API on API_HOST:API_PORT until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from agentmesh.logging import configure_logging
from agentmesh.runtime import freeze_startup_heap
from agentmesh.settings import load_settings
from agentmesh.teams.spec import TeamError
from agentmesh.telemetry import configure_tracing, shutdown_tracing
from gateway.app import create_app
from gateway.http.h11_protocol import EdgeLimits, edge_protocol
from gateway.operations.health import mark_draining
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


# Time runs ended at the end of the grace period get to send their error event and [DONE] before uvicorn cancels.
END_OF_RUNS_MARGIN_S = 2.0


class DrainingServer(uvicorn.Server):
    """uvicorn, draining instead of cutting: on SIGTERM readiness turns 503 while the gateway still accepts for
    SHUTDOWN_DRAIN_DELAY (balancers take a moment to notice), then it stops accepting and open runs have
    SHUTDOWN_GRACE_PERIOD to finish; any still open then ends with an error event and [DONE], and is logged."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, settings: GatewaySettings) -> None:
        super().__init__(config)
        self._app = app
        self._drain_delay = settings.shutdown_drain_delay
        self._grace = settings.shutdown_grace_period

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_startup_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        mark_draining(self._app)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logger.info("draining", extra={"drain_delay_s": self._drain_delay, "grace_s": self._grace})
        await asyncio.sleep(self._drain_delay)
        timer = asyncio.get_running_loop().call_later(self._grace, self._end_open_runs)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def _end_open_runs(self) -> None:
        orchestrator = self._app.state.gateway.orchestrator
        ended = orchestrator.end_open_runs() if orchestrator is not None else 0
        logger.warning("shutdown grace period over: ended the runs still open", extra={"runs": ended})


def uvicorn_config(app: FastAPI, settings: GatewaySettings) -> uvicorn.Config:
    # uvicorn's access log writes query strings (a token sent as ?access_token=); gateway.http.access_log replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        # Keep the shared logging setup: uvicorn's loggers propagate to it.
        log_config=None,
        access_log=False,
        server_header=False,
        ws="none",
        loop=settings.event_loop,
        # h11 with read deadlines and a connection bound (gateway.http.h11_protocol), whatever else is installed.
        http=edge_protocol(
            EdgeLimits(
                header_timeout_s=settings.http_header_timeout,
                body_timeout_s=settings.http_body_timeout,
                max_connections=settings.max_connections,
            )
        ),
        timeout_keep_alive=settings.http_keepalive_timeout,
        # The client IP (per-IP rate limits) is the socket peer unless TRUST_PROXY_HEADERS names proxies to believe.
        proxy_headers=settings.trust_proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # After SIGTERM (see DrainingServer) in-flight requests get the grace period, then the lifespan's
        # shutdown closes the orchestrator channel.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_period + END_OF_RUNS_MARGIN_S),
    )


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level, settings.log_format)
    try:
        app = create_app(settings, tracer_provider=configure_tracing("gateway", settings))
    except TeamError as exc:
        print(f"gateway: invalid team: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        DrainingServer(uvicorn_config(app, settings), app, settings).run()
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
