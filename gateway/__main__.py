"""`python -m gateway`: serve the OpenAI-compatible API on API_HOST:API_PORT until SIGTERM or SIGINT."""

from __future__ import annotations

import uvicorn

from agentmesh.logging import configure_logging
from agentmesh.settings import load_settings
from gateway.app import create_app
from gateway.settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        # Keep the shared logging setup: uvicorn's loggers propagate to it.
        log_config=None,
        ws="none",
        # On SIGTERM uvicorn stops accepting, lets in-flight requests finish within the grace period,
        # then runs the lifespan's shutdown, which closes the orchestrator channel.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_period)),
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
