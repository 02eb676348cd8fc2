"""Worker replicas as processes behind the orchestrator's round-robin channel (what WORKER_REPLICAS=3 runs):
every replica gets calls, a SIGKILLed one costs no request, and a restarted one gets calls again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.processes import (
    ProcessMesh,
    ServiceProcess,
    calls_served,
    free_port,
    process_mesh,
    spawn,
    wait_for_grpc_port,
)

pytestmark = pytest.mark.e2e

REPLICAS = 3
SUBTASKS = 6  # per run: two Execute calls per replica if the channel spreads them evenly
SPREAD_WITHIN_S = 60.0


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {"OFFLINE_LATENCY_MS": "50", "MAX_SUBTASKS": str(SUBTASKS)}
    with process_mesh(tmp_path_factory.mktemp("scaled"), env=env, workers=REPLICAS) as running:
        yield running


def executes_served(metrics_port: int) -> float:
    return calls_served(metrics_port, "Execute")


def run_ok(mesh: ProcessMesh) -> None:
    """One run of SUBTASKS independent subtasks; every subtask must have succeeded."""
    text = "\n".join(f"describe city {i}" for i in range(SUBTASKS))
    request = orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content=text)])
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        events = list(orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=60))
    finished = [e.subtask_finished for e in events if e.HasField("subtask_finished")]
    assert len(finished) == SUBTASKS
    assert [f.error for f in finished if f.error] == []
    assert events[-1].HasField("usage")


def run_until(mesh: ProcessMesh, replicas: list[ServiceProcess], within_s: float = SPREAD_WITHIN_S) -> None:
    """Sends runs until every one of ``replicas`` has served calls (their metrics say so)."""
    baseline = {r.metrics_port: executes_served(r.metrics_port) for r in replicas}
    deadline = time.monotonic() + within_s
    while True:
        run_ok(mesh)
        idle = [r.log_path.name for r in replicas if executes_served(r.metrics_port) <= baseline[r.metrics_port]]
        if not idle:
            return
        assert time.monotonic() < deadline, f"no calls reached {idle} within {within_s} s"


def test_runs_spread_over_every_worker_replica(scaled: ProcessMesh) -> None:
    run_until(scaled, scaled.workers)
    assert all(executes_served(w.metrics_port) > 0 for w in scaled.workers)


def test_a_sigkilled_replica_costs_no_request_and_a_restarted_one_rejoins(scaled: ProcessMesh, tmp_path: Path) -> None:
    victim = scaled.workers[1]
    victim.process.kill()
    victim.process.wait(timeout=10)
    survivors = [w for w in scaled.workers if w is not victim]
    before = sum(executes_served(w.metrics_port) for w in survivors)
    for _ in range(10):
        run_ok(scaled)
    assert sum(executes_served(w.metrics_port) for w in survivors) - before == 10 * SUBTASKS

    # Started again on the same address, as a supervisor (make run, compose, Kubernetes) would.
    metrics_port = free_port()
    env = {"GRPC_LISTEN": victim.address, "METRICS_PORT": str(metrics_port), "OFFLINE_LATENCY_MS": "50"}
    restarted = spawn("worker", "worker_svc", env, tmp_path, log_name="worker1-restarted")
    restarted.metrics_port = metrics_port
    try:
        wait_for_grpc_port(restarted)
        run_until(scaled, [restarted])
    finally:
        restarted.stop()
