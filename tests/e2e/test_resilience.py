"""Faults end to end: the mesh as processes on the Anthropic SDK, against a fake API that injects them and keeps count.

Three meshes share one fake: ``resilient`` (two workers, defaults), ``strict`` (FAIL_FAST, a breaker that opens
after two failures) and ``slow`` (a 2 s coordination timeout; its last test stops every process).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.rpc.breaker_health import health_name
from agentmesh.settings import DEFAULT_ORCHESTRATOR_MODEL
from orchestrator_svc.server import SERVICE_NAME as ORCHESTRATOR_SERVICE
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-e2e-resilience-0123456789"
RETRY_ATTEMPTS = 3
FAST_RETRIES = {
    "RETRY_MAX_ATTEMPTS": str(RETRY_ATTEMPTS),
    "RETRY_EXPONENTIAL_MULTIPLIER": "0.01",
    "RETRY_EXPONENTIAL_MAX": "0.05",
}
WORKER_CALL = "^Subtask "  # how a worker's prompt starts (worker_svc/task.py)
SYNTHESIS_CALL = "^The request:"  # how the synthesizer's prompt starts (synthesizer_svc/prompt.py)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_fake(fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")


def _mesh(
    fake: FakeAnthropicProcess, factory: pytest.TempPathFactory, name: str, workers: int = 1, **env: str
) -> Iterator[ProcessMesh]:
    anthropic = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    with process_mesh(factory.mktemp(name), env={**anthropic, **FAST_RETRIES, **env}, workers=workers) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def resilient(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    yield from _mesh(fake, tmp_path_factory, "resilient", workers=2)


@pytest.fixture(scope="module")
def strict(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    yield from _mesh(
        fake,
        tmp_path_factory,
        "strict",
        FAIL_FAST="true",
        RETRY_MAX_ATTEMPTS="2",
        CIRCUIT_BREAKER_FAILURE_THRESHOLD="2",
        CIRCUIT_BREAKER_TIMEOUT="60",
    )


@pytest.fixture(scope="module")
def slow(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    yield from _mesh(fake, tmp_path_factory, "slow", WORKER_COORDINATION_TIMEOUT="2", REQUEST_TIMEOUT="60")


@dataclass
class Streamed:
    """What an SSE client saw: the answer, the progress, error events, and whether [DONE] ended it."""

    content: str = ""
    reasoning: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    def feed(self, line: str) -> None:
        if not line.startswith("data: "):
            return
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            self.done = True
            return
        event = json.loads(data)
        if "error" in event:
            self.errors.append(event["error"])
            return
        for choice in event["choices"]:
            self.content += choice["delta"].get("content") or ""
            self.reasoning += choice["delta"].get("reasoning_content") or ""


def _chat(mesh: ProcessMesh, text: str, *, stream: bool = True) -> dict[str, Any]:
    return {
        "url": f"{mesh.base_url}/v1/chat/completions",
        "json": {"model": "agentmesh", "stream": stream, "messages": [{"role": "user", "content": text}]},
        "headers": {"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        "timeout": 30,
    }


def stream_chat(mesh: ProcessMesh, text: str) -> Streamed:
    seen = Streamed()
    with httpx.stream("POST", **_chat(mesh, text)) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            seen.feed(line)
    return seen


def _upstream(fake: FakeAnthropicProcess, pattern: str) -> list[dict[str, Any]]:
    """The requests the fake received whose last user message starts like ``pattern`` (a ^-anchored prefix)."""
    prefix = pattern.removeprefix("^")
    return [r for r in fake.requests() if r["body"]["messages"][-1]["content"].startswith(prefix)]


# -- upstream retries --


def test_a_529_is_retried_inside_the_worker_and_the_user_gets_a_normal_answer(
    resilient: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"status": 529, "error_type": "overloaded_error", "match_text": "^Subtask t1:"})
    client = openai.OpenAI(
        base_url=f"{resilient.base_url}/v1", api_key=mint_token(resilient.jwt_secret), max_retries=0, timeout=30
    )
    chunks = list(
        client.chat.completions.create(
            model="agentmesh", messages=[{"role": "user", "content": "Describe Paris"}], stream=True
        )
    )
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer.startswith("fake answer: ")
    # Retried once by the provider, and not again by gRPC's retry policy or the SDK.
    assert [r["status"] for r in _upstream(fake, "^Subtask t1:")] == [529, 200]


def test_retry_after_is_honoured(resilient: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    fake.script({"status": 429, "retry_after": 1, "match_model": DEFAULT_ORCHESTRATOR_MODEL})
    seen = stream_chat(resilient, "Describe Paris")
    assert seen.content.startswith("fake answer: ") and seen.done and not seen.errors
    planning = [r for r in fake.requests() if r["body"]["model"] == DEFAULT_ORCHESTRATOR_MODEL]
    assert [r["status"] for r in planning] == [429, 200]
    # The backoff alone is at most RETRY_EXPONENTIAL_MAX = 0.05 s: the second request waited for retry-after.
    assert planning[1]["received_s"] - planning[0]["received_s"] >= 1.0


# -- partial failure --


def test_a_subtask_that_fails_for_good_leaves_a_streamed_answer_naming_the_missing_part(
    resilient: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script(
        {"status": 500, "match_text": "^Subtask t2:", "times": 10},
        {"echo": True, "match_text": SYNTHESIS_CALL},  # the answer shows what the synthesizer was told
    )
    seen = stream_chat(resilient, "Describe Paris\nDescribe Atlantis")
    assert seen.done and not seen.errors
    assert "[t2] Describe Atlantis — MISSING: it failed (UNAVAILABLE: model unavailable:" in seen.content
    assert "[t1] Describe Paris\nfake answer: " in seen.content
    assert "Describe Atlantis failed" in seen.reasoning
    # RETRY_MAX_ATTEMPTS upstream calls, not multiplied by gRPC retrying the worker.
    assert len(_upstream(fake, "^Subtask t2:")) == RETRY_ATTEMPTS


def test_a_failed_subtask_is_logged_once_at_warning_and_listed_in_the_usage(
    resilient: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"status": 500, "match_text": "^Subtask t2:", "times": 10})
    request = _chat(resilient, "Describe Paris\nDescribe Atlantis", stream=False)
    request["headers"]["X-Request-ID"] = "loud-failure-1"
    response = httpx.post(**request)
    assert response.status_code == 200
    (failed,) = response.json()["usage"]["failed_subtasks"]
    assert failed["id"] == "t2" and failed["outcome"] == "failed"
    assert failed["reason"].startswith("UNAVAILABLE: model unavailable:")
    request_id = response.json()["id"].removeprefix("chatcmpl-")  # the client's id, made unique
    assert request_id.startswith("loud-failure-1-")
    warnings = [
        r
        for r in resilient.orchestrator.log_records()
        if r["level"] == "WARNING" and r.get("request_id") == request_id and r.get("subtask_id")
    ]
    assert [(w["subtask_id"], w["outcome"]) for w in warnings] == [("t2", "failed")]
    assert warnings[0]["reason"] == failed["reason"]


def test_fail_fast_turns_a_failed_subtask_into_an_error(strict: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    fake.script({"status": 500, "match_text": "^Subtask t2:", "times": 10})
    seen = stream_chat(strict, "Describe Paris\nDescribe Atlantis")
    assert seen.done and not seen.content
    (error,) = seen.errors
    assert error["message"].startswith("subtask failed (FAIL_FAST is on): t2: UNAVAILABLE: model unavailable")
    assert error["type"] == "service_unavailable_error"
    assert _upstream(fake, SYNTHESIS_CALL) == []


# -- circuit breaker --


def _orchestrator_health(mesh: ProcessMesh, service: str) -> str:
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def test_repeated_failures_open_the_breaker_and_later_calls_fail_fast(
    strict: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"status": 529, "match_model": DEFAULT_ORCHESTRATOR_MODEL, "times": 100})
    statuses = []
    for _ in range(4):
        response = httpx.post(**_chat(strict, "Describe Paris", stream=False))
        statuses.append(response.status_code)
    assert statuses == [429, 429, 503, 503]
    # Two calls of RETRY_MAX_ATTEMPTS=2 each opened it; the two after it never left the orchestrator.
    assert len(fake.requests()) == 4
    error = response.json()["error"]
    assert error["message"].startswith(
        f"planning failed: model unavailable: circuit breaker for {DEFAULT_ORCHESTRATOR_MODEL}"
    )
    assert "open after 2 consecutive upstream failures" in error["message"]
    assert "retry-after" in response.headers
    assert _orchestrator_health(strict, health_name(DEFAULT_ORCHESTRATOR_MODEL)) == "NOT_SERVING"
    assert _orchestrator_health(strict, ORCHESTRATOR_SERVICE) == "SERVING"  # one model's breaker, not the service
    scraped = httpx.get(f"http://127.0.0.1:{strict.orchestrator.metrics_port}/", timeout=10).text
    assert f'agentmesh_circuit_breaker_state{{model="{DEFAULT_ORCHESTRATOR_MODEL}"}} 2.0' in scraped  # 2 = open


# -- cancellation --


def test_a_client_that_disconnects_leaves_no_upstream_request_open(
    resilient: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"latency_s": 30, "match_text": WORKER_CALL, "times": 2})
    with httpx.stream("POST", **_chat(resilient, "Describe Paris\nDescribe Rome")) as response:
        lines = response.iter_lines()  # held: dropping the iterator would close the connection already
        for line in lines:
            if line.startswith("data: "):
                break  # the run has started
        fake.wait_for_state(in_flight=2, within_s=10)  # both workers are waiting on the model
    disconnected = time.monotonic()
    fake.wait_for_state(in_flight=0, within_s=1.0)
    assert time.monotonic() - disconnected < 1.0
    workers = _upstream(fake, WORKER_CALL)
    assert len(workers) == 2 and all(r["disconnected"] for r in workers)
    assert _upstream(fake, SYNTHESIS_CALL) == []


def test_a_slow_model_hits_the_coordination_timeout_long_before_the_request_deadline(
    slow: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"latency_s": 30, "match_text": WORKER_CALL, "times": 2})
    started = time.monotonic()
    seen = stream_chat(slow, "Describe Paris")
    assert time.monotonic() - started < 10  # WORKER_COORDINATION_TIMEOUT=2, REQUEST_TIMEOUT=60
    assert seen.done and not seen.content
    (error,) = seen.errors
    assert error["message"] == "worker coordination timed out after 2 s with 1 of 1 subtasks unfinished"
    assert error["type"] == "timeout_error"
    fake.wait_for_state(in_flight=0, within_s=2)  # the slow call was abandoned, not left running

    started = time.monotonic()
    response = httpx.post(**_chat(slow, "Describe Rome", stream=False))
    assert time.monotonic() - started < 10
    assert response.status_code == 504
    assert response.json()["error"]["message"].startswith("worker coordination timed out after 2 s")


# -- dying replicas and draining processes (each leaves its mesh changed: last for its mesh) --


def test_killing_a_worker_mid_run_fails_nothing_that_follows_and_never_hangs(
    resilient: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.script({"latency_s": 3, "match_text": WORKER_CALL, "times": 2})
    seen = Streamed()
    started = time.monotonic()
    with httpx.stream("POST", **_chat(resilient, "Describe Paris\nDescribe Rome")) as response:
        lines = response.iter_lines()
        for line in lines:
            seen.feed(line)
            if line.startswith("data: "):
                break
        fake.wait_for_state(in_flight=2, within_s=10)
        resilient.workers[0].process.send_signal(signal.SIGKILL)
        resilient.workers[0].process.wait(10)
        for line in lines:
            seen.feed(line)
    assert seen.done, "the stream did not end with [DONE]"
    assert time.monotonic() - started < 20
    # The killed worker's Execute failed UNAVAILABLE, and the channel's retry policy ran it on the other replica.
    assert not seen.errors and seen.content.startswith("fake answer: ")
    assert "failed" not in seen.reasoning
    for text in ("Describe Lisbon", "Describe Oslo\nDescribe Bern", "Describe Rome"):
        after = stream_chat(resilient, text)
        assert after.done and not after.errors and after.content.startswith("fake answer: ")
        assert "failed" not in after.reasoning


def test_sigterm_during_a_stream_lets_it_finish(slow: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    words = [f"word{i} " for i in range(10)]
    fake.script({"match_text": SYNTHESIS_CALL, "text": "".join(words), "delta_delay_s": 0.3})
    seen = Streamed()
    with httpx.stream("POST", **_chat(slow, "Describe Paris")) as response:
        lines = response.iter_lines()
        for line in lines:
            seen.feed(line)
            if seen.content:
                break  # the synthesis is streaming
        slow.gateway.process.send_signal(signal.SIGTERM)
        ready = _readiness(slow)
        for service in slow.services:
            service.process.send_signal(signal.SIGTERM)
        for line in lines:
            seen.feed(line)
    # Refused once uvicorn has closed its listener (within 0.1 s of the signal); 503 from the signal until then.
    assert ready in (None, "the gateway is shutting down"), ready
    assert seen.done and not seen.errors
    assert seen.content == "".join(words)
    for service in slow.services:
        code = service.process.wait(15)
        # uvicorn re-raises the signal it handled once it has drained; the gRPC services return.
        assert code in ((0, -signal.SIGTERM) if service.name == "gateway" else (0,)), service.name
        if service.name != "gateway":
            assert f"{service.name} stopped" in service.logs()


def _readiness(mesh: ProcessMesh) -> str | None:
    """Why the gateway says it is not ready, or None when it no longer accepts connections."""
    try:
        response = httpx.get(f"{mesh.base_url}/health/ready", timeout=5)
    except httpx.TransportError:
        return None
    return str(response.json()["error"]["message"]) if response.status_code == 503 else f"HTTP {response.status_code}"
