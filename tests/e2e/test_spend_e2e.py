"""Spend control end to end: the whole mesh on the Anthropic SDK against the fake API, priced from a pricing file.

The fake's outputs are long and cut at each request's max_tokens, so the model calls really cost about their worst
case; its own timestamps (arrival, end) show what was open when each call started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, ServiceProcess, free_port, process_mesh, spawn, wait_for_http_ready
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-spend-e2e-key-0123456789"
ORCHESTRATOR_MODEL = "claude-sonnet-4-6"
AGENT_MODEL = "claude-haiku-4-5-20251001"
# USD per million input/output tokens: not the built-in prices, so the file is what prices the run.
PRICES = {ORCHESTRATOR_MODEL: (4.0, 20.0), AGENT_MODEL: (2.0, 10.0)}
MAX_TOKENS = {"ORCHESTRATOR_MAX_TOKENS": "300", "WORKER_MAX_TOKENS": "2000", "SYNTHESIZER_MAX_TOKENS": "2000"}
DAILY_LIMIT = 0.5
IP_LIMIT = 150
FANOUT = "\n".join(f"Describe {city}" for city in ("Paris", "Rome", "Berlin", "Madrid", "Vienna", "Lisbon"))
LONG_ANSWER = "All about it, in detail. " * 800  # 20000 characters: longer than any max_tokens here allows


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def pricing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "prices.json"
    prices = {model: {"input_per_mtok": i, "output_per_mtok": o} for model, (i, o) in PRICES.items()}
    path.write_text(json.dumps(prices))
    return path


def mesh_env(fake: FakeAnthropicProcess, pricing_file: Path) -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "MODEL_PRICING_FILE": str(pricing_file),
        "SPEND_LIMIT_USD_PER_DAY": str(DAILY_LIMIT),
        "MAX_CONCURRENT_STREAMS_PER_USER": "0",
        # Every request here comes from 127.0.0.1; the module's verified requests stay well below this.
        "RATE_LIMIT_PER_IP": f"{IP_LIMIT}/minute",
        **MAX_TOKENS,
    }


@pytest.fixture(scope="module")
def mesh(
    fake: FakeAnthropicProcess, pricing_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessMesh]:
    with process_mesh(tmp_path_factory.mktemp("spend-mesh"), env=mesh_env(fake, pricing_file)) as running:
        yield running


@pytest.fixture(autouse=True)
def long_answers(fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")
    fake.control("POST", "default", {"text": LONG_ANSWER})


def chat(url: str, subject: str, secret: str, content: str = FANOUT, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": content}], **extra},
        headers={"Authorization": f"Bearer {mint_token(secret, subject=subject)}"},
        timeout=60,
    )


def cost(request: dict[str, Any]) -> float:
    input_price, output_price = PRICES[request["body"]["model"]]
    usage = request["usage"]
    return (usage["input_tokens"] * input_price + usage["output_tokens"] * output_price) / 1_000_000


def worst_case(request: dict[str, Any]) -> float:
    """The call's cost had it written all of its max_tokens (its real input counted: ours is estimated higher)."""
    input_price, output_price = PRICES[request["body"]["model"]]
    return (request["usage"]["input_tokens"] * input_price + request["body"]["max_tokens"] * output_price) / 1e6


def assert_never_over(upstream: list[dict[str, Any]], cap: float) -> None:
    """At each call's start: the calls already over at their real cost, the open ones (this one too) at their
    worst case, within the cap."""
    for call in upstream:
        start = call["received_s"]
        spent = sum(cost(r) for r in upstream if r["finished_s"] <= start)
        held = sum(worst_case(r) for r in upstream if r["received_s"] <= start < r["finished_s"])
        assert spent + held <= cap + 1e-12, (agent_of(call), spent, held, cap)


def test_a_fanout_capped_at_half_its_cost_is_answered_within_the_cap(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    uncapped = chat(mesh.base_url, "half-cap", mesh.jwt_secret)
    assert uncapped.status_code == 200, uncapped.text
    full_cost = sum(cost(r) for r in fake.requests())
    assert uncapped.json()["usage"]["cost_usd"] == pytest.approx(full_cost)
    assert uncapped.json()["usage"]["max_cost_usd"] == pytest.approx(DAILY_LIMIT)  # the day's budget capped it

    fake.control("POST", "reset")
    fake.control("POST", "default", {"text": LONG_ANSWER})
    cap = round(full_cost / 2, 6)
    capped = chat(mesh.base_url, "half-cap", mesh.jwt_secret, max_cost_usd=cap)
    assert capped.status_code == 200, capped.text
    answer = capped.json()
    assert answer["choices"][0]["message"]["content"]
    upstream = fake.requests()
    assert answer["usage"]["cost_usd"] == pytest.approx(sum(cost(r) for r in upstream))
    assert answer["usage"]["cost_usd"] <= cap
    assert answer["usage"]["max_cost_usd"] == pytest.approx(cap)
    assert_never_over(upstream, cap)
    workers = [r for r in upstream if agent_of(r) == "worker"]
    assert workers and all(r["body"]["max_tokens"] < 2000 for r in workers)  # lowered to what the cap affords
    assert float(capped.headers["x-budget-remaining-usd"]) < DAILY_LIMIT


def test_a_tight_cap_leaves_subtasks_out_and_says_so(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    cap = 0.02
    with httpx.stream(
        "POST",
        f"{mesh.base_url}/v1/chat/completions",
        json={
            "model": "agentmesh",
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_cost_usd": cap,
            "messages": [{"role": "user", "content": FANOUT}],
        },
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret, subject='tight-cap')}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    progress = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    usage = chunks[-1]["usage"]
    left_out = [s for s in usage["failed_subtasks"] if s["outcome"] == "over_budget"]
    assert left_out, usage
    assert "left out (cost cap)" in progress
    upstream = fake.requests()
    assert len([r for r in upstream if agent_of(r) == "worker"]) == 6 - len(left_out)
    (synthesis,) = [r for r in upstream if agent_of(r) == "synthesizer"]
    assert "left out to keep within the cost cap" in synthesis["body"]["messages"][-1]["content"]
    assert usage["cost_usd"] <= cap
    assert_never_over(upstream, cap)


def test_a_cap_too_small_to_plan_is_a_400_before_any_model_call(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    response = chat(mesh.base_url, "tiny-cap", mesh.jwt_secret, max_cost_usd=0.0001)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "max_cost_usd"
    assert "the smallest cap this request accepts is $" in error["message"]
    assert fake.requests() == []


def test_the_smallest_cap_accepted_plans_at_the_floor_and_falls_back_visibly(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    refused = chat(mesh.base_url, "smallest-cap", mesh.jwt_secret, max_cost_usd=0.0001)
    smallest = float(refused.json()["error"]["message"].rsplit("$", 1)[1])
    response = chat(mesh.base_url, "smallest-cap", mesh.jwt_secret, max_cost_usd=smallest)
    assert response.status_code == 200, response.text
    answer = response.json()
    upstream = fake.requests()
    (planning,) = [r for r in upstream if agent_of(r) == "orchestrator"]
    assert planning["body"]["max_tokens"] == 64  # six subtasks do not fit in the planner's floor
    progress = answer["choices"][0]["message"]["reasoning_content"]
    assert "Plan: 1 subtask (fallback: the plan was cut short by its max_tokens of 64 (lowered from 300" in progress
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["cost_usd"] <= smallest
    assert_never_over(upstream, smallest)


@pytest.mark.parametrize("cap", [-0.5, 0, "0.5", True])
def test_bad_caps_are_refused(mesh: ProcessMesh, fake: FakeAnthropicProcess, cap: Any) -> None:
    response = chat(mesh.base_url, "bad-cap", mesh.jwt_secret, max_cost_usd=cap)
    assert response.status_code in (400, 422)
    assert response.json()["error"]["param"] == "max_cost_usd"
    assert fake.requests() == []


def test_a_huge_client_max_tokens_leaves_the_configured_cap(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    for asked, sent in ((2**31 - 1, 2000), (50, 50)):
        fake.control("POST", "reset")
        response = chat(mesh.base_url, "max-tokens", mesh.jwt_secret, "Describe Paris", max_tokens=asked)
        assert response.status_code == 200, response.text
        (synthesis,) = [r for r in fake.requests() if agent_of(r) == "synthesizer"]
        assert synthesis["body"]["max_tokens"] == sent


def test_an_unauthenticated_flood_leaves_a_user_of_that_ip_unaffected(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    with httpx.Client(base_url=mesh.base_url, headers={"Authorization": "Bearer not-a-token"}, timeout=10) as client:
        statuses = [client.post("/v1/chat/completions", json={}).status_code for _ in range(IP_LIMIT + 1)]
    assert statuses == [401] * IP_LIMIT + [429]
    assert chat(mesh.base_url, "after-the-flood", mesh.jwt_secret, "Describe Paris").status_code == 200


def spend_the_day(urls: list[str], subject: str, secret: str) -> list[httpx.Response]:
    """Rounds of four concurrent requests (spread over ``urls``), each capped so that several hold a part of the
    day at once, until the day's budget refuses a whole round."""
    answers: list[httpx.Response] = []
    with ThreadPoolExecutor(4) as pool:
        for _ in range(30):
            batch = list(
                pool.map(
                    lambda i: chat(
                        urls[i % len(urls)], subject, secret, "Describe Paris\nDescribe Rome", max_cost_usd=0.08
                    ),
                    range(4),
                )
            )
            answers += batch
            if all(a.status_code == 429 for a in batch):
                return answers
    raise AssertionError(f"the day's budget never ran out: {[a.status_code for a in answers]}")


def assert_day_spent(answers: list[httpx.Response], last: httpx.Response, upstream: list[dict[str, Any]]) -> None:
    """Refused while runs in flight held the day (retry soon), or once it was spent (retry in about a day)."""
    assert {a.status_code for a in answers} == {200, 429}, [a.text for a in answers if a.status_code not in (200, 429)]
    for refused in [a for a in answers if a.status_code == 429] + [last]:
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
        assert f"SPEND_LIMIT_USD_PER_DAY is ${DAILY_LIMIT:g}" in error["message"]
        assert int(refused.headers["retry-after"]) == 5 or int(refused.headers["retry-after"]) > 23 * 3600
    assert int(last.headers["retry-after"]) > 23 * 3600
    assert sum(cost(r) for r in upstream) <= DAILY_LIMIT


def test_a_subject_that_spent_its_day_gets_429_while_another_is_served(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    answers = spend_the_day([mesh.base_url], "big-spender", mesh.jwt_secret)
    last = chat(mesh.base_url, "big-spender", mesh.jwt_secret, "Describe Paris")
    assert_day_spent(answers, last, fake.requests())
    assert chat(mesh.base_url, "someone-else", mesh.jwt_secret, "Describe Paris").status_code == 200


def start_gateway(workdir: Path, name: str, env: dict[str, str]) -> ServiceProcess:
    port = free_port()
    gateway = spawn("gateway", "gateway", {"API_HOST": "127.0.0.1", "API_PORT": str(port), **env}, workdir, name)
    gateway.port = port
    wait_for_http_ready(gateway, "/health")
    return gateway


def test_two_gateways_sharing_redis_enforce_one_daily_budget(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, pricing_file: Path, tmp_path: Path
) -> None:
    with redis_server(tmp_path) as redis_uri:
        env = {
            **mesh_env(fake, pricing_file),
            "JWT_SECRET_KEY": mesh.jwt_secret,
            "RATE_LIMIT_STORAGE_URI": redis_uri,
            "ORCHESTRATOR_TARGET": mesh.orchestrator.address,
        }
        gateways = [start_gateway(tmp_path, name, env) for name in ("gateway-a", "gateway-b")]
        try:
            urls = [f"http://{g.address}" for g in gateways]
            answers = spend_the_day(urls, "shared-spender", mesh.jwt_secret)
            last = chat(urls[1], "shared-spender", mesh.jwt_secret, "Describe Paris")
        finally:
            for gateway in gateways:
                gateway.stop()
    assert_day_spent(answers, last, fake.requests())
    assert {a.url.port for a in answers if a.status_code == 200} == {g.port for g in gateways}
