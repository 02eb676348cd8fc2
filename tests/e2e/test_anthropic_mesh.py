"""The real Anthropic path end to end: every service on the official SDK, against a fake Messages API server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-e2e-fake-key-0123456789"
ORCHESTRATOR_MODEL = "claude-sonnet-4-6"
WORKER_MODEL = "claude-haiku-4-5-20251001"
# USD per million tokens, written out here so the test checks the pricing table rather than reusing it.
PRICES = {ORCHESTRATOR_MODEL: (3.0, 15.0), WORKER_MODEL: (1.0, 5.0)}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "RETRY_MAX_ATTEMPTS": "2",
        "RETRY_EXPONENTIAL_MULTIPLIER": "0.01",
        "RETRY_EXPONENTIAL_MAX": "0.05",
    }
    with process_mesh(tmp_path_factory.mktemp("anthropic-mesh"), env=env) as running:
        yield running


@pytest.fixture
def token(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> str:
    fake.control("POST", "reset")
    return mint_token(mesh.jwt_secret)


def _cost(model: str, usage: dict[str, Any]) -> float:
    input_price, output_price = PRICES[model]
    return (usage["input_tokens"] * input_price + usage["output_tokens"] * output_price) / 1_000_000


def test_streamed_answer_usage_and_cost_match_what_the_api_reported(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, token: str
) -> None:
    client = openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key=token, max_retries=0, timeout=60)
    stream = client.chat.completions.create(
        model="agentmesh",
        messages=[{"role": "user", "content": "Describe Paris\nDescribe Rome"}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
        extra_headers={"X-Request-ID": "anthropic-e2e-1"},
    )
    chunks = list(stream)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer.startswith("fake answer: ")

    upstream = fake.requests()
    assert sorted(agent_of(r) for r in upstream) == ["orchestrator", "synthesizer", "worker", "worker"]
    (request_id,) = {request["headers"]["x-request-id"] for request in upstream}
    assert re.fullmatch(r"anthropic-e2e-1-[0-9a-f]{12}", request_id), request_id  # the client's id, made unique
    for request in upstream:
        assert API_KEY in request["headers"].get("authorization", "") + request["headers"].get("x-api-key", "")
        assert "temperature" not in request["body"]
    (plan_request,) = [r for r in upstream if agent_of(r) == "orchestrator"]
    assert plan_request["body"]["model"] == ORCHESTRATOR_MODEL
    assert plan_request["body"]["tool_choice"] == {"type": "tool", "name": "plan"}

    usage = chunks[-1].usage
    assert usage is not None
    agents = {a["agent"]: a for a in (usage.model_extra or {})["agents"]}
    for agent in ("orchestrator", "worker", "synthesizer"):
        reported = [r for r in upstream if agent_of(r) == agent]
        assert agents[agent]["input_tokens"] == sum(r["usage"]["input_tokens"] for r in reported)
        assert agents[agent]["output_tokens"] == sum(r["usage"]["output_tokens"] for r in reported)
        expected_cost = sum(_cost(r["body"]["model"], r["usage"]) for r in reported)
        assert agents[agent]["cost_usd"] == pytest.approx(expected_cost)
    assert (usage.model_extra or {})["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in agents.values()))
    assert usage.prompt_tokens == sum(r["usage"]["input_tokens"] for r in upstream)


def test_an_overloaded_api_is_retried_and_the_user_gets_a_normal_answer(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, token: str
) -> None:
    fake.script({"status": 529, "error_type": "overloaded_error", "error_message": "Overloaded", "times": 1})
    client = openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key=token, max_retries=0, timeout=60)
    completion = client.chat.completions.create(model="agentmesh", messages=[{"role": "user", "content": "hi"}])
    assert (completion.choices[0].message.content or "").startswith("fake answer: ")
    planning = [r for r in fake.requests() if agent_of(r) == "orchestrator"]
    assert [r["status"] for r in planning] == [529, 200]


def test_a_persistently_overloaded_api_becomes_a_429_naming_the_phase(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, token: str
) -> None:
    fake.script({"status": 529, "error_type": "overloaded_error", "error_message": "Overloaded", "times": 2})
    response = httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 429
    assert "retry-after" in response.headers
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["message"].startswith("planning failed")
    assert API_KEY not in response.text
    assert len(fake.requests()) == 2  # RETRY_MAX_ATTEMPTS=2, and the SDK's own retries are off


def test_no_service_logs_the_api_key_or_the_jwt_secret(mesh: ProcessMesh, token: str) -> None:
    httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).raise_for_status()
    for service in mesh.services:
        logs = service.logs()
        assert logs, f"{service.name} wrote no log"
        assert API_KEY not in logs, service.name
        assert mesh.jwt_secret not in logs, service.name
        assert token not in logs, service.name
