"""The worker process holds the MCP sessions: opened at start-up, named by its health, its children stop with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.llm.offline import OfflineProvider
from agentmesh.rpc.tool_health import health_name
from agentmesh.teams.loader import RoleDefaults, load_teams
from tests.support.mcp_servers import journal_events
from tests.unit.test_teams import write_team
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def tool_team(root: Path, journal: Path) -> None:
    write_team(
        root,
        looker=(
            "---\ndescription: looks things up\nmcp_servers:\n  - name: demo\n    command: python\n"
            f"    args: [-m, agentmesh.tools.demo_server, --journal, {journal}]\ntools: [demo.*]\n---\nLook.\n"
        ),
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_worker_opens_one_session_reports_a_dead_server_in_its_health_and_stops_the_child(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.jsonl"
    tool_team(tmp_path / "teams", journal)
    teams = load_teams(tmp_path / "teams", RoleDefaults(llm_provider="offline"))
    settings = WorkerSettings(mcp_reconnect_backoff_initial=1.0, mcp_reconnect_backoff_max=2.0)
    server = await start_worker(settings, OfflineProvider(), "127.0.0.1:0", teams=teams)
    try:
        (first,) = journal_events(journal, "started")
        assert len(journal_events(journal, "initialize")) == 1  # opened at start-up, before any call
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=health_name("demo"))
            assert (await health.Check(request, timeout=5)).status == SERVING
            watch = health.Watch(request, timeout=60)
            assert (await watch.read()).status == SERVING
            os.kill(int(str(first["pid"])), signal.SIGKILL)
            assert (await watch.read()).status == NOT_SERVING
            assert (await watch.read()).status == SERVING  # restarted
            watch.cancel()
        second = journal_events(journal, "started")[-1]
        assert second["pid"] != first["pid"] and alive(int(str(second["pid"])))
    finally:
        await server.stop(grace=1)
    assert not alive(int(str(second["pid"])))
