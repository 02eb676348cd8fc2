"""The grpc.aio server factory every service uses: its servicer, health, reflection, ordered shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from agentmesh import runtime
from agentmesh.llm import registry
from agentmesh.llm.breaker import BreakerRegistry
from agentmesh.llm.factory import create_provider
from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.pacing import Pacers
from agentmesh.llm.provider import LLMProvider
from agentmesh.llm.quota_share import create_share
from agentmesh.logging import configure_logging
from agentmesh.metrics import export_breaker_state, listen_host, serve_metrics
from agentmesh.rpc.breaker_health import report_breakers
from agentmesh.rpc.interceptors import InFlight, ServerInterceptor
from agentmesh.rpc.policy import ServerPolicy
from agentmesh.rpc.reflection import enable_reflection
from agentmesh.settings import GrpcServiceSettings, load_settings
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import TeamError
from agentmesh.telemetry import configure_tracing, server_tracer, shutdown_tracing

logger = logging.getLogger(__name__)

# Calls ended at the end of the grace period get this long to unwind and send their status.
END_OF_CALLS_MARGIN_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# A health name that says SERVING while the process runs, whatever its dependencies: for liveness probes, which
# must not restart an orchestrator only because its workers are down.
LIVENESS = "liveness"


@dataclass
class GrpcServer:
    """A started server; ``port`` is the bound one (useful when listening on port 0)."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: Sequence[str]
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    in_flight: InFlight = field(default_factory=InFlight)

    async def set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING first, then let in-flight calls finish within ``grace``, then close clients.

        New application calls are refused (UNAVAILABLE) from the start; health checks still answer NOT_SERVING.
        The server stops once the last application call is done: health watches (every client's balancer
        keeps one open) never end by themselves, and must not hold each drain for the whole grace period.
        Calls still running when the grace is over are ended with UNAVAILABLE (their downstream calls cancelled),
        not cut with the connection.
        """
        await self.health.enter_graceful_shutdown()
        self.in_flight.draining = True
        if not await _idle_within(self.in_flight, grace):
            logger.warning("grace period over: ending the calls still running", extra={"calls": self.in_flight.count})
            self.in_flight.end_all()
            await _idle_within(self.in_flight, END_OF_CALLS_MARGIN_S)
        await self.server.stop(None)
        for close in self.on_close:
            await close()


async def _idle_within(in_flight: InFlight, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await in_flight.idle()
    return in_flight.count == 0


async def start_grpc_server(
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    *,
    serving: bool = True,
    policy: ServerPolicy | None = None,
) -> GrpcServer:
    """Binds ``listen`` (``host:0`` picks a free port), registers health and reflection, and starts."""
    policy = policy or ServerPolicy()
    calls = ServerInterceptor(server_tracer(), policy.max_input_chars, policy.default_deadline_s)
    server = grpc.aio.server(
        interceptors=[calls],
        options=policy.server_options(),
        maximum_concurrent_rpcs=policy.max_concurrent_rpcs,
    )
    register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if policy.reflection:
        enable_reflection(server, [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name])
    credentials = policy.tls.server_credentials()
    port = server.add_secure_port(listen, credentials) if credentials else server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC listen address {listen!r}")
    await server.start()
    running = GrpcServer(server, port, health, service_names, in_flight=calls.in_flight)
    await running.set_serving(serving)
    await health.set(LIVENESS, SERVING)
    return running


async def serve_until_signalled(running: GrpcServer, grace: float) -> None:
    """Blocks until SIGTERM or SIGINT, then shuts down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_waiter = asyncio.create_task(stop.wait())
    terminated = asyncio.create_task(running.server.wait_for_termination())
    await asyncio.wait({stop_waiter, terminated}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("shutting down", extra={"grace_s": grace})
    await running.stop(grace)
    for task in (stop_waiter, terminated):
        task.cancel()


S = TypeVar("S", bound=GrpcServiceSettings)


def run_service(settings_class: type[S], start: Callable[[S, TeamProviders], Awaitable[GrpcServer]]) -> None:
    """The body of every ``python -m <service>``: logging, telemetry, the agent's provider with its wrappers
    (retries, per-model circuit breakers, metering) and those its team files choose, serve until signalled.
    A bad team stops it with exit status 2 and a message naming the file and the field."""
    settings = load_settings(settings_class)
    name = settings.agent
    configure_logging(name, settings.log_level, settings.log_format)
    configure_tracing(name, settings)
    serve_metrics(settings.metrics_port, host=listen_host(settings.grpc_listen))

    logger.info(settings.describe(), extra={"agent": name, "provider": settings.provider, "model": settings.model})

    async def serve() -> None:
        breakers = BreakerRegistry(settings.circuit_breaker_failure_threshold, settings.circuit_breaker_timeout)
        # One per process: every agent calling a model with a key paces it together (and with other processes).
        pacers = Pacers(create_share(settings.rate_limit_storage_uri))
        provider = create_provider(settings, breakers, pacers=pacers)

        def build(name: str, offline_latency_ms: int | None) -> LLMProvider:
            backend = OfflineProvider(offline_latency_ms) if offline_latency_ms is not None else registry.load(name)()
            return create_provider(settings, breakers, backend, pacers)

        providers = TeamProviders(provider, settings.provider, build)
        running = await start(settings, providers)
        running.on_close.append(providers.aclose)
        report_breakers(running.health, breakers)
        breakers.on_create.append(lambda breaker: export_breaker_state(breaker.name, breaker.state))
        breakers.listeners.append(lambda breaker, _old, new: export_breaker_state(breaker.name, new))
        running.on_close.append(provider.aclose)
        if pacers.share is not None:
            running.on_close.append(pacers.share.aclose)
        runtime.freeze_startup_heap()
        logger.info("%s serving", name, extra={"port": running.port, "services": running.service_names})
        await serve_until_signalled(running, settings.shutdown_grace_period)
        logger.info("%s stopped", name)

    try:
        runtime.run(serve(), settings.event_loop)
    except TeamError as exc:
        print(f"{name}: invalid team: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        shutdown_tracing()
