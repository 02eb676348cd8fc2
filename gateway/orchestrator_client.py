"""The gateway's side of the orchestrator: one Run call per request, and readiness via grpc.health.v1."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.v1 import orchestrator_pb2, orchestrator_pb2_grpc

ORCHESTRATOR_SERVICE: str = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
READINESS_TIMEOUT_S = 2.0


class GatewayShuttingDown(Exception):
    """The gateway ended this run because its shutdown grace period ran out."""


class OrchestratorCall:
    """One open ``Orchestrator.Run`` call."""

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[orchestrator_pb2.RunRequest, orchestrator_pb2.RunEvent],
        open_runs: set[OrchestratorCall],
    ) -> None:
        self._call = call
        self._open_runs = open_runs
        self._shut_down = False
        open_runs.add(self)

    async def next_event(self) -> orchestrator_pb2.RunEvent | None:
        """The next event, or None at the end; a failed call raises ``grpc.aio.AioRpcError``, and one ended by
        the gateway's shutdown ``GatewayShuttingDown``."""
        try:
            event = await self._call.read()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._shut_down and task is not None and not task.cancelling():
                raise GatewayShuttingDown from None
            raise
        if event is grpc.aio.EOF:
            self._open_runs.discard(self)
            return None
        assert isinstance(event, orchestrator_pb2.RunEvent)
        return event

    def cancel(self) -> None:
        """Cancels the call (a no-op once it has ended); the orchestrator then cancels its workers."""
        self._open_runs.discard(self)
        self._call.cancel()

    def shut_down(self) -> None:
        self._shut_down = True
        self.cancel()


class OrchestratorClient:
    def __init__(self, channel: grpc.aio.Channel, run_timeout_s: float) -> None:
        self._run = orchestrator_pb2_grpc.OrchestratorStub(channel).Run
        self._health = health_pb2_grpc.HealthStub(channel)
        self._run_timeout_s = run_timeout_s
        self._open_runs: set[OrchestratorCall] = set()

    def run(self, request: orchestrator_pb2.RunRequest) -> OrchestratorCall:
        """Opens the call with the request's deadline; the request id travels in metadata (channel interceptor)."""
        return OrchestratorCall(self._run(request, timeout=self._run_timeout_s), self._open_runs)

    def end_open_runs(self) -> int:
        """Ends every run still open (shutdown grace is over): each reader gets ``GatewayShuttingDown``."""
        runs = list(self._open_runs)
        for run in runs:
            run.shut_down()
        return len(runs)

    async def ready(self) -> bool:
        """True when the orchestrator reports SERVING for its service; any failure counts as not ready."""
        try:
            response = await self._health.Check(
                health_pb2.HealthCheckRequest(service=ORCHESTRATOR_SERVICE), timeout=READINESS_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
