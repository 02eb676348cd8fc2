"""The Responses API on the whole mesh as processes, against a fake Anthropic API that keeps time: two gateway
replicas on one redis-server, a cancel that stops every upstream call within 1 s, and a replica SIGKILLed while it
runs a background response."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.openai.responses.redis_store import LEASE_RENEW_S, LEASE_S
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.fake_api import text_of
from tests.support.processes import ProcessMesh, ServiceProcess, free_port, process_mesh, spawn, wait_for_http_ready
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-e2e-responses-0123456789"
WORKER_CALL = "Subtask "  # how a worker's prompt starts (worker_svc/task.py)
TWO_SUBTASKS = "Describe Paris\nDescribe Rome"  # the fake plans one subtask per line
# A dead replica's response reads failed once its lease (LEASE_S) has run out after its last renewal.
FAILED_WITHIN_S = LEASE_S + LEASE_RENEW_S
POLL_S = 0.1  # how often the test, as a client would, polls the response


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_fake(fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")


@pytest.fixture(scope="module")
def env(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with redis_server(tmp_path_factory.mktemp("redis")) as uri:
        yield {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url, "RESPONSES_STORE_URI": uri}


@pytest.fixture(scope="module")
def mesh(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    with process_mesh(tmp_path_factory.mktemp("responses"), env=env) as running:
        yield running


def start_replica(mesh: ProcessMesh, env: dict[str, str], workdir: Path, name: str) -> ServiceProcess:
    """Another gateway process in front of the same orchestrator and redis-server."""
    port = free_port()
    replica = spawn("gateway", "gateway", {
        **env, "JWT_SECRET_KEY": mesh.jwt_secret, "API_HOST": "127.0.0.1", "API_PORT": str(port),
        "ORCHESTRATOR_TARGET": mesh.orchestrator.address, "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_CHAT_COMPLETIONS": "100000/minute",
    }, workdir, name)  # fmt: skip
    replica.port = port
    wait_for_http_ready(replica, "/health/ready")
    return replica


@pytest.fixture(scope="module")
def replica_b(mesh: ProcessMesh, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    replica = start_replica(mesh, env, tmp_path_factory.mktemp("replica-b"), "gateway-b")
    try:
        yield f"http://{replica.address}"
    finally:
        replica.stop()


def client(mesh: ProcessMesh, base_url: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url or mesh.base_url}/v1", api_key=mint_token(mesh.jwt_secret),
                         max_retries=0, timeout=30)  # fmt: skip


def poll_until(read: Any, done: Any, within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        response = read()
        if done(response) or time.monotonic() > deadline:
            return response
        time.sleep(POLL_S)


def worker_calls(fake: FakeAnthropicProcess) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if r["body"]["messages"][-1]["content"].startswith(WORKER_CALL)]


def test_a_streamed_response_gives_the_answer_chat_gives(mesh: ProcessMesh) -> None:
    with client(mesh) as sdk:
        events = list(sdk.responses.create(model="agentmesh", input="Describe Paris", stream=True))
        chat = sdk.chat.completions.create(model="agentmesh", messages=[{"role": "user", "content": "Describe Paris"}])
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text and text == chat.choices[0].message.content
    assert events[-1].type == "response.completed" and events[-1].response.usage is not None


def test_a_background_run_on_one_replica_completes_as_read_from_the_other(mesh: ProcessMesh, replica_b: str) -> None:
    with client(mesh) as on_a, client(mesh, replica_b) as on_b:
        created = on_a.responses.create(model="agentmesh", input="Describe Paris", background=True)
        done = poll_until(lambda: on_b.responses.retrieve(created.id), lambda r: r.status != "in_progress", 30)
        replay = list(on_b.responses.retrieve(created.id, stream=True, starting_after=1))
    assert done.status == "completed" and done.output_text and done.usage is not None
    assert [e.sequence_number for e in replay] == list(range(2, 2 + len(replay)))


def test_previous_response_id_brings_the_earlier_turn_to_the_planner(
    mesh: ProcessMesh, replica_b: str, fake: FakeAnthropicProcess
) -> None:
    with client(mesh) as on_a, client(mesh, replica_b) as on_b:
        first = on_a.responses.create(model="agentmesh", input="Describe Paris")
        on_b.responses.create(model="agentmesh", input="And Rome?", previous_response_id=first.id)
    planning = [r for r in fake.requests() if r["body"].get("tool_choice")]  # the planner forces its plan tool
    turns = [(m["role"], text_of(m["content"])) for m in planning[-1]["body"]["messages"]]
    assert turns == [("user", "Describe Paris"), ("assistant", first.output_text), ("user", "And Rome?")]


def test_cancel_from_another_replica_stops_every_upstream_call_within_1_s(
    mesh: ProcessMesh, replica_b: str, fake: FakeAnthropicProcess
) -> None:
    fake.script({"latency_s": 30, "match_text": f"^{WORKER_CALL}", "times": 2})
    with client(mesh) as on_a, client(mesh, replica_b) as on_b:
        created = on_a.responses.create(model="agentmesh", input=TWO_SUBTASKS, background=True)
        fake.wait_for_state(in_flight=2, within_s=20)  # both workers wait on the model
        cancel_sent_s = time.monotonic()  # the same clock as the fake's (CLOCK_MONOTONIC, one machine)
        cancelled = on_b.responses.cancel(created.id)
        fake.wait_for_state(in_flight=0, within_s=5)
        read = on_a.responses.retrieve(created.id)
    assert cancelled.status == read.status == "cancelled"
    calls = worker_calls(fake)
    assert len(calls) == 2 and all(call["disconnected"] for call in calls)
    stopped_after = [call["finished_s"] - cancel_sent_s for call in calls]
    print(f"\nupstream calls stopped {max(stopped_after):.3f} s after the cancel was sent")
    assert max(stopped_after) < 1.0, stopped_after


def test_a_sigkilled_replica_leaves_its_response_failed_and_its_upstream_calls_stop(
    mesh: ProcessMesh, env: dict[str, str], replica_b: str, fake: FakeAnthropicProcess, tmp_path: Path
) -> None:
    doomed = start_replica(mesh, env, tmp_path, "gateway-doomed")
    try:
        fake.script({"latency_s": 60, "match_text": f"^{WORKER_CALL}", "times": 2})
        with client(mesh, f"http://{doomed.address}") as on_doomed:
            created = on_doomed.responses.create(model="agentmesh", input=TWO_SUBTASKS, background=True)
        fake.wait_for_state(in_flight=2, within_s=20)
        doomed.process.send_signal(signal.SIGKILL)
        killed_s = time.monotonic()
        with client(mesh, replica_b) as on_b:
            failed = poll_until(lambda: on_b.responses.retrieve(created.id), lambda r: r.status != "in_progress",
                                FAILED_WITHIN_S + 5)  # fmt: skip
        failed_after_s = time.monotonic() - killed_s
        fake.wait_for_state(in_flight=0, within_s=10)
    finally:
        doomed.stop()
    assert failed.status == "failed" and failed.error is not None
    assert "replica running this response stopped" in failed.error.message
    # The bound is FAILED_WITHIN_S; a poll and a loaded machine may add a little.
    print(f"\nthe response read failed {failed_after_s:.1f} s after the SIGKILL")
    assert failed_after_s <= FAILED_WITHIN_S + 1.0, failed_after_s
    calls = worker_calls(fake)
    assert len(calls) == 2 and all(call["disconnected"] for call in calls)
