"""Each model's circuit breaker as a grpc.health.v1 entry, ``breaker/<model>``: SERVING only while it is closed.

An open breaker is per model, so it never turns the service itself NOT_SERVING (the balancer would then
skip a replica that still serves its other models); an operator asks for the breaker by name::

    grpcurl -plaintext -d '{"service": "breaker/claude-haiku-4-5-20251001"}' HOST:PORT grpc.health.v1.Health/Check

An entry appears with the first call to its model. Each transition is also logged (``circuit breaker open``).
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from agentmesh.llm.breaker import BreakerRegistry, BreakerState, CircuitBreaker

PREFIX = "breaker/"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_name(model: str) -> str:
    return PREFIX + model


def report_breakers(health: HealthServicer, registry: BreakerRegistry) -> None:
    """Keeps one health entry per breaker in step with its state, from now on (call on the server's loop)."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def publish(breaker: CircuitBreaker, state: BreakerState) -> None:
        status = SERVING if state is BreakerState.CLOSED else NOT_SERVING
        # Transitions happen inside model calls, which cannot await here; tasks run in creation order.
        task = loop.create_task(health.set(health_name(breaker.name), status))
        pending.add(task)
        task.add_done_callback(pending.discard)

    registry.on_create.append(lambda breaker: publish(breaker, breaker.state))
    registry.listeners.append(lambda breaker, _old, new: publish(breaker, new))
    for breaker in registry.breakers.values():
        publish(breaker, breaker.state)
