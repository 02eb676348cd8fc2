"""The orchestrator's clients of the workers and the synthesizer: one channel per target, and their health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.rpc.channel import create_channel
from agentmesh.teams.spec import AgentSpec, Teams
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc, worker_pb2, worker_pb2_grpc
from orchestrator_svc.routing import WorkerRoutes
from orchestrator_svc.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

# A health check may take this long before it counts as a failure, however often we poll: a busy replica is slow
# to answer, not down, and a flap to NOT_SERVING would turn the whole mesh away for a poll interval.
HEALTH_CHECK_TIMEOUT_S = 2.0
WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name
SYNTHESIZER_SERVICE = synthesizer_pb2.DESCRIPTOR.services_by_name["Synthesizer"].full_name


class Downstream:
    """Long-lived channels to the worker and synthesizer services, shared by every run."""

    def __init__(self, settings: OrchestratorSettings, teams: Teams) -> None:
        tls = settings.grpc_tls
        self.routes = WorkerRoutes.create(settings.worker_targets, settings.worker_target, teams)
        # One channel per distinct worker target; Execute is idempotent, so it may retry UNAVAILABLE on a replica.
        self._worker_channels = {
            target: create_channel(target, WORKER_SERVICE, retry_unavailable=True, tls=tls)
            for target in sorted(self.routes.targets(teams))
        }
        self._workers: dict[str, worker_pb2_grpc.WorkerAsyncStub] = {
            target: worker_pb2_grpc.WorkerStub(ch) for target, ch in self._worker_channels.items()
        }
        self._synthesizer_channel = create_channel(settings.synthesizer_target, SYNTHESIZER_SERVICE, tls=tls)
        self.synthesizer = synthesizer_pb2_grpc.SynthesizerStub(self._synthesizer_channel)
        self._poll_interval = settings.health_poll_interval
        # The last health reading: while downstream is known to be serving, calls wait out a reconnect.
        self.serving = False

    async def _serving(self, channel: grpc.aio.Channel, service: str) -> bool:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=max(self._poll_interval, HEALTH_CHECK_TIMEOUT_S),
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def worker(self, spec: AgentSpec) -> tuple[str, worker_pb2_grpc.WorkerAsyncStub]:
        """The target serving ``spec`` and its stub."""
        target = self.routes.target(spec)
        return target, self._workers[target]

    async def all_serving(self) -> bool:
        readings = await asyncio.gather(
            *(self._serving(channel, WORKER_SERVICE) for channel in self._worker_channels.values()),
            self._serving(self._synthesizer_channel, SYNTHESIZER_SERVICE),
        )
        return all(readings)

    async def watch(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Polls downstream health until cancelled, reporting each change (and the first reading)."""
        last: bool | None = None
        while True:
            serving = await self.all_serving()
            self.serving = serving
            if serving != last:
                logger.info("downstream %s", "serving" if serving else "not serving")
                await on_change(serving)
                last = serving
            await asyncio.sleep(self._poll_interval)

    async def close(self) -> None:
        for channel in self._worker_channels.values():
            await channel.close()
        await self._synthesizer_channel.close()
