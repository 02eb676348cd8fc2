"""Subtasks really run in parallel, and dependent ones really receive their inputs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

LATENCY_S = 1.0
SUBTASKS = 8


@pytest.fixture(scope="module")
def slow_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {"OFFLINE_LATENCY_MS": str(int(LATENCY_S * 1000)), "MAX_SUBTASKS": str(SUBTASKS)}
    with process_mesh(tmp_path_factory.mktemp("slow-mesh"), env=env) as running:
        yield running


def _run(mesh: ProcessMesh, text: str) -> tuple[list[orchestrator_pb2.RunEvent], float]:
    request = orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content=text)])
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        started = time.monotonic()
        events = list(orchestrator_pb2_grpc.OrchestratorStub(channel).Run(request, timeout=120))
        return events, time.monotonic() - started


def test_independent_subtasks_overlap_instead_of_adding_up(slow_mesh: ProcessMesh) -> None:
    events, elapsed = _run(slow_mesh, "\n".join(f"research topic {i}" for i in range(SUBTASKS)))
    kinds = [e.WhichOneof("event") for e in events]
    # Observed directly: every subtask was dispatched before the first one came back.
    assert kinds.index("subtask_finished") > max(i for i, k in enumerate(kinds) if k == "subtask_started")
    assert kinds.count("subtask_finished") == SUBTASKS
    # Ideal: plan + slowest worker + synthesis = 3 x latency; one after the other it would be 10 x latency.
    serial = (SUBTASKS + 2) * LATENCY_S
    assert elapsed < serial * 0.65, f"{elapsed:.1f} s is not parallel (serial would be {serial:.0f} s)"


def test_a_dependent_subtask_sees_the_output_it_depends_on(slow_mesh: ProcessMesh) -> None:
    events, _ = _run(slow_mesh, "Describe Paris\nthen list three museums there")
    plan = events[0].plan
    assert list(plan.subtasks[1].depends_on) == ["t1"]
    kinds = [(e.WhichOneof("event"), getattr(e, e.WhichOneof("event") or "", None)) for e in events]
    order = [(k, v.subtask_id) for k, v in kinds if k in ("subtask_started", "subtask_finished")]
    assert order.index(("subtask_started", "t2")) > order.index(("subtask_finished", "t1"))
    answer = "".join(e.text_delta for e in events)
    # The offline model echoes its input: t2's worker received t1's output, so it appears inside t2's part.
    t2_part = answer[answer.index("[t2]") :]
    assert "Outputs of the subtasks this one builds on:\n\n[t1]" in t2_part
    assert "Describe Paris" in t2_part
