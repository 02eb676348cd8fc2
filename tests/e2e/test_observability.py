"""What an operator sees: one trace across all four processes, metrics that add up, one log line per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.support.processes import ProcessMesh, ServiceProcess, process_mesh

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-observability-fake-key"
SERVICES = {"agentmesh-gateway", "agentmesh-orchestrator", "agentmesh-worker", "agentmesh-synthesizer"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[OtlpReceiver, str]]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def mesh(
    fake: FakeAnthropicProcess, receiver: tuple[OtlpReceiver, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessMesh]:
    env = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver[1],
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with process_mesh(tmp_path_factory.mktemp("observed-mesh"), env=env) as running:
        yield running


def _chat(mesh: ProcessMesh, request_id: str, subject: str = "operator-test") -> dict[str, Any]:
    response = httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": "Describe Paris\nDescribe Rome"}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret, subject)}", "X-Request-ID": request_id},
        timeout=60,
    )
    response.raise_for_status()
    return dict(response.json())


def _one_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan] | None:
    """The trace holding all four LLM calls of the request, once all its spans have arrived (root included)."""
    for trace_id in {s.trace_id for s in spans if s.name.startswith("llm.")}:
        trace = [s for s in spans if s.trace_id == trace_id]
        ids = {s.span_id for s in trace}
        complete = any(not s.parent_span_id for s in trace) and all(
            s.parent_span_id in ids for s in trace if s.parent_span_id
        )
        if complete and len([s for s in trace if s.name.startswith("llm.")]) == 4:
            return trace
    return None


def test_one_request_is_one_trace_across_all_four_services(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, receiver: tuple[OtlpReceiver, str]
) -> None:
    fake.control("POST", "reset")
    _chat(mesh, "trace-me-1")
    spans = receiver[0].wait_for(lambda received: _one_trace(received) is not None)
    trace = _one_trace(spans)
    assert trace is not None
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if not s.parent_span_id]
    assert len(roots) == 1 and roots[0].service == "agentmesh-gateway"
    assert {s.service for s in trace} == SERVICES
    # Each hop is a child of the caller: worker and synthesizer server spans hang under the orchestrator.
    for service in ("agentmesh-worker", "agentmesh-synthesizer"):
        server_spans = [
            s for s in trace if s.service == service and s.parent_span_id and by_id[s.parent_span_id].service != service
        ]
        assert server_spans and all(by_id[s.parent_span_id].service == "agentmesh-orchestrator" for s in server_spans)
    # LLM spans carry the tokens the API reported.
    reported = {(agent_of(r), r["usage"]["input_tokens"], r["usage"]["output_tokens"]) for r in fake.requests()}
    llm_spans = {
        (
            str(s.attributes["agentmesh.agent"]),
            s.attributes["gen_ai.usage.input_tokens"],
            s.attributes["gen_ai.usage.output_tokens"],
        )
        for s in trace
        if s.name.startswith("llm.")
    }
    assert llm_spans == reported


def test_model_calls_are_exported_in_the_genai_semantic_conventions(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, receiver: tuple[OtlpReceiver, str]
) -> None:
    fake.control("POST", "reset")
    _chat(mesh, "genai-1")
    spans = receiver[0].wait_for(lambda received: _one_trace(received) is not None)
    trace = _one_trace(spans)
    assert trace is not None
    # What the API was asked and answered, per agent; the fake's default answers stop with tool_use or end_turn.
    expected = sorted(
        (
            agent_of(r),
            r["body"]["model"],
            r["body"]["max_tokens"],
            r["usage"]["input_tokens"],
            r["usage"]["output_tokens"],
            ("tool_use",) if agent_of(r) == "orchestrator" else ("end_turn",),
        )
        for r in fake.requests()
    )
    exported = []
    for span in (s for s in trace if s.name.startswith("llm.")):
        attributes = span.attributes
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "anthropic"
        assert attributes["gen_ai.response.model"] == attributes["gen_ai.request.model"]
        exported.append(
            (
                attributes["agentmesh.agent"],
                attributes["gen_ai.request.model"],
                attributes["gen_ai.request.max_tokens"],
                attributes["gen_ai.usage.input_tokens"],
                attributes["gen_ai.usage.output_tokens"],
                attributes["gen_ai.response.finish_reasons"],
            )
        )
    assert sorted(exported) == expected


def _scrape(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = service.port if service.name == "gateway" else service.metrics_port
    path = "/metrics" if service.name == "gateway" else "/"
    text = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_of_every_process_move_by_what_the_request_did(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")
    before = {s.name: _scrape(s) for s in mesh.services}
    _chat(mesh, "metrics-1")
    after = {s.name: _scrape(s) for s in mesh.services}
    upstream = fake.requests()

    def delta(process: str, name: str, **labels: str) -> float:
        return _value(after[process], name, **labels) - _value(before[process], name, **labels)

    for agent, service in (("orchestrator", "orchestrator"), ("worker", "worker"), ("synthesizer", "synthesizer")):
        calls = [r for r in upstream if agent_of(r) == agent]
        model = calls[0]["body"]["model"]
        for direction, key in (("input", "input_tokens"), ("output", "output_tokens")):
            expected = sum(r["usage"][key] for r in calls)
            assert (
                delta(service, "agentmesh_llm_tokens_total", agent=agent, model=model, direction=direction) == expected
            )
        assert delta(service, "agentmesh_llm_calls_total", agent=agent, model=model, outcome="ok") == len(calls)
    assert (
        delta(
            "worker", "agentmesh_grpc_server_handled_total", service="agentmesh.v1.Worker", method="Execute", code="OK"
        )
        == 2
    )
    assert (
        delta(
            "orchestrator",
            "agentmesh_grpc_client_handled_total",
            service="agentmesh.v1.Worker",
            method="Execute",
            code="OK",
        )
        == 2
    )
    assert delta("orchestrator", "agentmesh_subtasks_total", outcome="ok") == 2
    assert delta("orchestrator", "agentmesh_plan_subtasks_count") == 1
    assert (
        delta("gateway", "agentmesh_http_requests_total", route="/v1/chat/completions", method="POST", status="200")
        == 1
    )
    assert _value(after["orchestrator"], "agentmesh_runs_in_flight") == 0


def test_one_log_line_per_request_tells_who_what_and_where_the_time_went(mesh: ProcessMesh) -> None:
    request_id = _chat(mesh, "log-line-1", subject="alice")["id"].removeprefix("chatcmpl-")
    assert request_id.startswith("log-line-1-")
    records = [r for r in mesh.gateway.log_records() if r.get("event") == "request completed"]
    (record,) = [r for r in records if r.get("request_id") == request_id]
    assert record["user"] == "alice"
    assert record["subtasks"] == 2
    assert {a["agent"] for a in record["agents"]} == {"orchestrator", "worker", "synthesizer"}
    assert record["cost_usd"] > 0
    assert set(record["phases_ms"]) == {"planning", "coordination", "synthesis"}
    assert record["trace_id"]
