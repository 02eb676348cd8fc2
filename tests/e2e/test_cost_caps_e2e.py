"""Cost caps that shape a run: the whole mesh with its default max_tokens and the built-in Claude prices, against
the fake Anthropic API, whose answers are long and cut at each request's max_tokens (so every call costs about its
worst case). The fake's own timestamps show what was open when each call started."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import mint_token
from tests.support.browser import chromium
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh
from tests.support.spend_audit import assert_never_over, call_cost

# Generous: the inspector's test runs a browser, and five processes and other suites share two cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

API_KEY = "sk-ant-cost-caps-e2e-key-0123456789"
FANOUT = "\n".join(f"Describe {city}" for city in ("Paris", "Rome", "Berlin", "Madrid", "Vienna", "Lisbon"))
LONG_ANSWER = "All about it, in detail. " * 1400  # 35000 characters: longer than any default max_tokens allows
SMALLEST_CAP = re.compile(r"the smallest cap this request accepts is \$(\d+\.\d+)")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    # No *_MAX_TOKENS and no MODEL_PRICING_FILE: the defaults a new user gets.
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url, "MAX_CONCURRENT_STREAMS_PER_USER": "0"}
    with process_mesh(tmp_path_factory.mktemp("cost-caps-mesh"), env=env) as running:
        yield running


@pytest.fixture(autouse=True)
def long_answers(fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")
    fake.control("POST", "default", {"text": LONG_ANSWER})


def chat(mesh: ProcessMesh, content: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": content}], **extra},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret, subject='cost-caps')}"},
        timeout=60,
    )


def agents(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["agent"]: row for row in answer["usage"]["agents"]}


def assert_answered_within(response: httpx.Response, cap: float, fake: FakeAnthropicProcess) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["choices"][0]["message"]["content"]
    upstream = fake.requests()
    assert answer["usage"]["cost_usd"] == pytest.approx(sum(call_cost(r) for r in upstream))
    assert answer["usage"]["cost_usd"] <= cap
    assert answer["usage"]["max_cost_usd"] == pytest.approx(cap)
    assert_never_over(upstream, cap)
    return answer


def test_a_cent_answers_a_one_subtask_request_within_it_and_says_what_it_lowered(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    response = chat(mesh, "Say hi", max_cost_usd=0.01)
    answer = assert_answered_within(response, 0.01, fake)
    assert [agent_of(r) for r in fake.requests()] == ["orchestrator", "worker", "synthesizer"]
    rows = agents(answer)
    for agent, configured in (("orchestrator", 2048), ("worker", 2048), ("synthesizer", 4096)):
        assert rows[agent]["max_tokens_lowered_from"] == configured, rows[agent]
        assert rows[agent]["max_tokens"] < configured
    sent = {agent_of(r): r["body"]["max_tokens"] for r in fake.requests()}
    assert sent == {agent: row["max_tokens"] for agent, row in rows.items()}
    lowered = response.headers["x-max-tokens-lowered"]
    assert f"orchestrator 2048->{sent['orchestrator']}" in lowered
    assert f"worker/generalist 2048->{sent['worker']}" in lowered
    assert f"synthesizer 4096->{sent['synthesizer']}" in lowered
    # The long answer ran into the synthesizer's lowered max_tokens: the client is told it was cut.
    assert answer["choices"][0]["finish_reason"] == "length"


def test_half_the_uncapped_cost_answers_a_fanout_within_the_cap(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    uncapped = chat(mesh, FANOUT)
    assert uncapped.status_code == 200, uncapped.text
    full_cost = sum(call_cost(r) for r in fake.requests())
    assert uncapped.json()["usage"]["cost_usd"] == pytest.approx(full_cost)
    assert "x-max-tokens-lowered" not in uncapped.headers
    assert all("max_tokens_lowered_from" not in row for row in uncapped.json()["usage"]["agents"])

    fake.control("POST", "reset")
    fake.control("POST", "default", {"text": LONG_ANSWER})
    cap = round(full_cost / 2, 6)
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
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret, subject='cost-caps')}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    usage = chunks[-1]["usage"]
    upstream = fake.requests()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert usage["cost_usd"] == pytest.approx(sum(call_cost(r) for r in upstream))
    assert usage["cost_usd"] <= cap
    assert_never_over(upstream, cap)
    assert any(row.get("max_tokens_lowered_from") for row in usage["agents"])


def test_a_cap_below_the_floors_names_the_smallest_cap_accepted_and_that_cap_is_answered(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    refused = chat(mesh, "Say hi", max_cost_usd=0.001)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "max_cost_usd"
    found = SMALLEST_CAP.search(error["message"])
    assert found, error["message"]
    assert fake.requests() == []
    smallest = float(found.group(1))
    assert 0.001 < smallest < 0.01

    answer = assert_answered_within(chat(mesh, "Say hi", max_cost_usd=smallest), smallest, fake)
    assert agents(answer)["orchestrator"]["max_tokens"] == 64  # the planner's floor
    fake.control("POST", "reset")
    just_below = chat(mesh, "Say hi", max_cost_usd=round(smallest - 0.000001, 6))
    assert just_below.status_code == 400, just_below.text
    assert fake.requests() == []


def test_the_inspector_shows_which_max_tokens_the_cap_lowered(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    response = chat(mesh, "Say hi", max_cost_usd=0.01)
    assert response.status_code == 200, response.text
    run_id, rows = response.json()["id"], agents(response.json())
    expect.set_options(timeout=20_000)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{mesh.base_url}/inspect")
        page.fill("#token", mint_token(mesh.jwt_secret, subject="cost-caps"))
        page.click("#token-form button[type=submit]")
        page.click(f'#runs tr[data-run-id="{run_id}"]')
        expect(page.locator("#run-title")).to_have_text(run_id)
        expect(page.locator("#usage tbody tr[data-lowered]")).to_have_count(3)
        cells = page.locator("#usage tbody tr td.max-tokens").all_text_contents()
        page.close()
    assert cells == [
        f"{rows[agent]['max_tokens']} (lowered from {configured} to fit the cost cap)"
        for agent, configured in (("orchestrator", 2048), ("worker", 2048), ("synthesizer", 4096))
    ]
