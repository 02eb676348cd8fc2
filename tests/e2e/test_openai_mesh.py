"""Any model behind any agent, end to end: the whole mesh on an OpenAI-compatible server, and a mixed mesh
(planner on Anthropic, workers and synthesizer on a local OpenAI-compatible model), against fake APIs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import mint_token
from tests.support import fake_anthropic, fake_openai
from tests.support.fake_api import FakeAPIProcess
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-proj-e2e-fake-key-0123456789"
ANTHROPIC_KEY = "sk-ant-e2e-fake-key-0123456789"
ORCHESTRATOR_MODEL = "gpt-4.1"
WORKER_MODEL = "gpt-4.1-mini"
LOCAL_MODEL = "llama3.1:8b"
# USD per million tokens (input, cached input, output), written out so the test checks the pricing table.
PRICES = {ORCHESTRATOR_MODEL: (2.0, 0.5, 8.0), WORKER_MODEL: (0.4, 0.1, 1.6), "claude-sonnet-4-6": (3.0, 0.3, 15.0)}
WORKER_LATENCY_S = 2.0
FAST_RETRIES = {"RETRY_MAX_ATTEMPTS": "3", "RETRY_EXPONENTIAL_MULTIPLIER": "0.01", "RETRY_EXPONENTIAL_MAX": "0.05"}


def _client(mesh: ProcessMesh) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key=mint_token(mesh.jwt_secret), max_retries=0, timeout=60)


def _openai_usage(request: dict[str, Any]) -> tuple[int, int, int]:
    """(uncached input, cached input, output) tokens the fake OpenAI reported for a request."""
    usage = request["usage"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return usage["prompt_tokens"] - cached, cached, usage["completion_tokens"]


def _cost(model: str, tokens: tuple[int, int, int]) -> float:
    (input_price, cached_price, output_price), (uncached, cached, output) = PRICES[model], tokens
    return (uncached * input_price + cached * cached_price + output * output_price) / 1_000_000


def _agents(chunks: list[Any]) -> dict[str, dict[str, Any]]:
    usage = chunks[-1].usage
    assert usage is not None
    return {a["agent"]: a for a in (usage.model_extra or {})["agents"]}


# -- the whole mesh on the openai provider --


@pytest.fixture(scope="module")
def fake_oai() -> Iterator[FakeAPIProcess]:
    with fake_openai.spawn_fake_openai(api_key=OPENAI_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def openai_mesh(fake_oai: FakeAPIProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {  # no LLM_PROVIDER: OPENAI_API_KEY alone picks openai for every agent
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{fake_oai.base_url}/v1",
        "ORCHESTRATOR_MODEL": ORCHESTRATOR_MODEL,
        "WORKER_MODEL": WORKER_MODEL,
        "SYNTHESIZER_MODEL": WORKER_MODEL,
        **FAST_RETRIES,
    }
    with process_mesh(tmp_path_factory.mktemp("openai-mesh"), env=env, workers=2) as running:
        yield running


@pytest.fixture
def oai(openai_mesh: ProcessMesh, fake_oai: FakeAPIProcess) -> FakeAPIProcess:
    fake_oai.control("POST", "reset")
    return fake_oai


def test_the_whole_mesh_runs_on_an_openai_compatible_server(openai_mesh: ProcessMesh, oai: FakeAPIProcess) -> None:
    cached = {"cache_read_input_tokens": 16}
    oai.control("POST", "default", cached)
    # Both workers take a while: run in parallel, the second starts before the first has answered.
    oai.script(*({**cached, "latency_s": WORKER_LATENCY_S, "match_text": f"^Subtask {s}:"} for s in ("t1", "t2")))
    stream = _client(openai_mesh).chat.completions.create(
        model="agentmesh",
        messages=[{"role": "user", "content": "Describe Paris\nDescribe Rome"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-ID": "openai-e2e-1"},
    )
    chunks = list(stream)

    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer.startswith("fake answer: ")
    upstream = oai.requests()
    assert sorted(fake_openai.agent_of(r) for r in upstream) == ["orchestrator", "synthesizer", "worker", "worker"]
    (request_id,) = {request["headers"]["x-request-id"] for request in upstream}
    assert re.fullmatch(r"openai-e2e-1-[0-9a-f]{12}", request_id), request_id  # the client's id, made unique
    assert {request["headers"]["authorization"] for request in upstream} == {f"Bearer {OPENAI_KEY}"}
    (plan,) = [r for r in upstream if fake_openai.agent_of(r) == "orchestrator"]
    assert plan["body"]["model"] == ORCHESTRATOR_MODEL
    assert plan["body"]["tool_choice"] == {"type": "function", "function": {"name": "plan"}}
    first, second = sorted((r for r in upstream if fake_openai.agent_of(r) == "worker"), key=lambda r: r["received_s"])
    assert second["received_s"] - first["received_s"] < WORKER_LATENCY_S  # asked before the first answered
    (synthesis,) = [r for r in upstream if fake_openai.agent_of(r) == "synthesizer"]
    assert synthesis["body"]["stream_options"] == {"include_usage": True}

    agents = _agents(chunks)
    for agent in ("orchestrator", "worker", "synthesizer"):
        reported = [_openai_usage(r) for r in upstream if fake_openai.agent_of(r) == agent]
        model = ORCHESTRATOR_MODEL if agent == "orchestrator" else WORKER_MODEL
        assert agents[agent]["input_tokens"] == sum(uncached for uncached, _, _ in reported)
        assert agents[agent]["cache_read_input_tokens"] == sum(cached for _, cached, _ in reported) > 0
        assert agents[agent]["output_tokens"] == sum(output for _, _, output in reported)
        assert agents[agent]["cost_usd"] == pytest.approx(sum(_cost(model, tokens) for tokens in reported))


def test_a_429_is_retried_after_its_retry_after(openai_mesh: ProcessMesh, oai: FakeAPIProcess) -> None:
    oai.script({"status": 429, "retry_after": 1, "error_message": "Rate limit reached for requests"})
    completion = _client(openai_mesh).chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": "hi"}]
    )

    assert (completion.choices[0].message.content or "").startswith("fake answer: ")
    planning = [r for r in oai.requests() if fake_openai.agent_of(r) == "orchestrator"]
    assert [r["status"] for r in planning] == [429, 200]
    assert planning[1]["received_s"] - planning[0]["received_s"] >= 0.9  # the backoff alone is ≤ 0.05 s


def test_a_server_without_tools_plans_through_json_schema_and_the_plan_event_says_so(
    openai_mesh: ProcessMesh, oai: FakeAPIProcess
) -> None:
    oai.control("POST", "default", {"refuse_tools": True})
    stream = _client(openai_mesh).chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": "Describe Paris\nDescribe Rome"}], stream=True
    )
    progress = "".join((c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in stream if c.choices)

    assert "Plan: 2 subtasks (fallback: the model server refused tools" in progress
    planning = [r for r in oai.requests() if fake_openai.agent_of(r) == "orchestrator"]
    assert [("tools" in r["body"], r["status"]) for r in planning] == [(True, 400), (False, 200)]


def test_start_up_names_each_agents_provider_and_model(openai_mesh: ProcessMesh) -> None:
    for service in openai_mesh.services:
        if service.name == "gateway":
            continue
        model = ORCHESTRATOR_MODEL if service.name == "orchestrator" else WORKER_MODEL
        events = [str(r.get("event")) for r in service.log_records()]
        assert f"{service.name}: provider openai (chosen by the default provider), model {model}" in events
        assert OPENAI_KEY not in service.logs()


# -- a mixed mesh: planner on Anthropic, workers and synthesizer on a local model --


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessMesh, FakeAPIProcess, FakeAPIProcess]]:
    workdir = tmp_path_factory.mktemp("mixed-mesh")
    prices = workdir / "prices.json"  # a local model costs nothing: priced at zero, not unpriced
    prices.write_text(json.dumps({LOCAL_MODEL: {"input_per_mtok": 0, "output_per_mtok": 0}}))
    with (
        fake_anthropic.spawn_fake_anthropic(api_key=ANTHROPIC_KEY) as claude,
        fake_openai.spawn_fake_openai() as local,  # like Ollama: no key
    ):
        env = {
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": claude.base_url,
            "OPENAI_BASE_URL": f"{local.base_url}/v1",
            "ORCHESTRATOR_PROVIDER": "anthropic",
            "WORKER_PROVIDER": "openai",
            "SYNTHESIZER_PROVIDER": "openai",
            "WORKER_MODEL": LOCAL_MODEL,
            "SYNTHESIZER_MODEL": LOCAL_MODEL,
            "MODEL_PRICING_FILE": str(prices),
        }
        with process_mesh(Path(workdir), env=env) as mesh:
            yield mesh, claude, local


def test_a_mixed_mesh_plans_on_claude_and_works_on_the_local_model(
    mixed: tuple[ProcessMesh, FakeAPIProcess, FakeAPIProcess],
) -> None:
    mesh, claude, local = mixed
    stream = _client(mesh).chat.completions.create(
        model="agentmesh",
        messages=[{"role": "user", "content": "Describe Paris\nDescribe Rome"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("fake answer: ")
    (plan,) = claude.requests()
    assert fake_anthropic.agent_of(plan) == "orchestrator"
    assert plan["body"]["model"] == "claude-sonnet-4-6"
    local_requests = local.requests()
    assert sorted(fake_openai.agent_of(r) for r in local_requests) == ["synthesizer", "worker", "worker"]
    assert {r["body"]["model"] for r in local_requests} == {LOCAL_MODEL}

    agents = _agents(chunks)
    input_price, _, output_price = PRICES["claude-sonnet-4-6"]
    expected = (plan["usage"]["input_tokens"] * input_price + plan["usage"]["output_tokens"] * output_price) / 1e6
    assert agents["orchestrator"]["model"] == "claude-sonnet-4-6"
    assert agents["orchestrator"]["cost_usd"] == pytest.approx(expected)
    for agent in ("worker", "synthesizer"):
        assert agents[agent]["model"] == LOCAL_MODEL
        assert agents[agent]["cost_usd"] == 0
        reported = [_openai_usage(r) for r in local_requests if fake_openai.agent_of(r) == agent]
        assert agents[agent]["output_tokens"] == sum(output for _, _, output in reported)
    usage = chunks[-1].usage
    assert usage is not None and (usage.model_extra or {})["cost_usd"] == pytest.approx(expected)
