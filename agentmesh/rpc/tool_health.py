"""Each MCP server of a worker as a grpc.health.v1 entry, ``mcp/<server>``: SERVING while its session works.

Like a breaker (breaker_health.py), a server that is down never turns the whole worker NOT_SERVING: its other
specialists, and this one's other tools, still work. The reason is logged with each transition and is what
``Toolbox.readiness()`` says::

    grpcurl -plaintext -d '{"service": "mcp/demo"}' HOST:PORT grpc.health.v1.Health/Check
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from agentmesh.tools import Toolbox

PREFIX = "mcp/"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_name(server: str) -> str:
    return PREFIX + server


async def report_tool_servers(health: HealthServicer, toolbox: Toolbox) -> None:
    """Publishes every server's state now, and keeps it in step from now on (call on the server's loop)."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def publish(server: str, reason: str) -> None:
        # State changes happen in the toolbox's tasks, which cannot await here; tasks run in creation order.
        task = loop.create_task(health.set(health_name(server), NOT_SERVING if reason else SERVING))
        pending.add(task)
        task.add_done_callback(pending.discard)

    toolbox.listeners.append(publish)
    for server, reason in toolbox.readiness().items():
        await health.set(health_name(server), NOT_SERVING if reason else SERVING)
