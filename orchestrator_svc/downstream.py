"""The orchestrator's clients of the worker and synthesizer: one channel each, and their health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.rpc.channel import create_channel
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc, worker_pb2, worker_pb2_grpc
from orchestrator_svc.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

# A health check may take this long before it counts as a failure, however often we poll: a busy replica is slow
# to answer, not down, and a flap to NOT_SERVING would turn the whole mesh away for a poll interval.
HEALTH_CHECK_TIMEOUT_S = 2.0
WORKER_SERVICE = worker_pb2.DESCRIPTOR.services_by_name["Worker"].full_name
SYNTHESIZER_SERVICE = synthesizer_pb2.DESCRIPTOR.services_by_name["Synthesizer"].full_name


class Downstream:
    """Long-lived channels to the worker and synthesizer services, shared by every run."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        # Execute is idempotent, so its channel may retry UNAVAILABLE on another replica.
        tls = settings.grpc_tls
        self._worker_channel = create_channel(settings.worker_target, WORKER_SERVICE, retry_unavailable=True, tls=tls)
        self._synthesizer_channel = create_channel(settings.synthesizer_target, SYNTHESIZER_SERVICE, tls=tls)
        self.worker = worker_pb2_grpc.WorkerStub(self._worker_channel)
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

    async def all_serving(self) -> bool:
        worker, synthesizer = await asyncio.gather(
            self._serving(self._worker_channel, WORKER_SERVICE),
            self._serving(self._synthesizer_channel, SYNTHESIZER_SERVICE),
        )
        return worker and synthesizer

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
        await self._worker_channel.close()
        await self._synthesizer_channel.close()
