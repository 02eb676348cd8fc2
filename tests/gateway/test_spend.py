"""Spend control at the gateway: the request's cost cap, and each subject's daily budget (reserved, then settled)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import pytest

from agentmesh.cost_cap import SPENT_TRAILER
from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    Context,
    FakeOrchestrator,
    GatewayFactory,
    RunEvent,
    mint_token,
    play,
)
from tests.gateway.test_chat_errors import assert_openai_error

CHAT: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
RUN_COST = 0.0045  # what HAPPY_RUN's usage says the run cost


def http(url: str, subject: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {mint_token(subject)}"}, timeout=20)


@pytest.mark.parametrize("cap", ["-1", "0", "0.0", '"0.5"', "true", "1e999", "NaN"])
async def test_a_bad_cap_is_refused_before_any_run(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, cap: str
) -> None:
    gateway = await start_gateway()
    body = json.dumps(CHAT)[:-1] + f', "max_cost_usd": {cap}}}'  # as sent: 1e999 parses as infinity
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    # NaN is not JSON at all: refused as a malformed body before any field is read.
    param = None if cap == "NaN" else "max_cost_usd"
    assert_openai_error(response, response.status_code, type="invalid_request_error", param=param)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("server_cap", "requested", "sent"),
    [(0, None, 0.0), (0, 0.25, 0.25), (1.0, None, 1.0), (1.0, 0.25, 0.25), (1.0, 5, 1.0)],
)
async def test_a_request_may_lower_the_server_cap_never_raise_it(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, server_cap: float, requested: float | None, sent: float
) -> None:
    gateway = await start_gateway(max_cost_per_request_usd=server_cap)
    body = CHAT if requested is None else {**CHAT, "max_cost_usd": requested}
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert fake.requests[-1].max_cost_usd == sent
    assert "x-budget-remaining-usd" not in response.headers  # no daily limit


async def test_a_cap_too_small_for_the_run_is_a_400_naming_the_parameter(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    message = "cost cap: max_cost_usd $0.000001 is too small: planning alone may cost up to $0.01"
    fake.script = play([], fail_with=(grpc.StatusCode.FAILED_PRECONDITION, message))
    gateway = await start_gateway()
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "max_cost_usd": 0.000001})
    error = assert_openai_error(response, 400, type="invalid_request_error", param="max_cost_usd")
    assert "planning alone may cost" in error["message"]


async def test_a_subject_that_spent_its_day_gets_429_while_another_is_served(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    gateway = await start_gateway(spend_limit_usd_per_day=0.01)
    async with http(gateway.url, "alice") as alice, http(gateway.url, "bob") as bob:
        served = [await alice.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
        refused = await alice.post("/v1/chat/completions", json=CHAT)
        other = await bob.post("/v1/chat/completions", json=CHAT)
        scraped = (await alice.get("/metrics")).text
    assert [r.status_code for r in served] == [200, 200, 200]
    # Without a cap of its own a request may spend what is left of the day; the third gets what two left.
    assert [r.max_cost_usd for r in fake.requests[:3]] == pytest.approx([0.01, 0.01 - RUN_COST, 0.01 - 2 * RUN_COST])
    remaining = [float(r.headers["x-budget-remaining-usd"]) for r in served]
    assert remaining == pytest.approx([0.01 - RUN_COST, 0.01 - 2 * RUN_COST, 0.0], abs=1e-6)
    error = assert_openai_error(refused, 429, type="insufficient_quota", code="insufficient_quota")
    assert "SPEND_LIMIT_USD_PER_DAY is $0.01" in error["message"]
    assert 23 * 3600 < int(refused.headers["retry-after"]) <= 24 * 3600 + 60
    assert refused.headers["x-budget-remaining-usd"] == "0.000000"
    assert other.status_code == 200
    assert len(fake.requests) == 4
    assert 'agentmesh_spend_refusals_total{reason="daily_budget"}' in scraped
    assert "alice" not in scraped


async def test_concurrent_requests_never_reserve_more_than_the_day_holds(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    fake.script = play(HAPPY_RUN, wait_after=0)
    gateway = await start_gateway(spend_limit_usd_per_day=0.01, max_concurrent_streams_per_user=0)
    async with http(gateway.url, "alice") as alice:
        sending = [
            asyncio.create_task(alice.post("/v1/chat/completions", json={**CHAT, "max_cost_usd": 0.003}))
            for _ in range(6)
        ]
        # Four runs hold 0.003 + 0.003 + 0.003 + 0.001; the others are refused while they do.
        refused = await _done(sending, count=2)
        fake.release.set()
        responses = await asyncio.gather(*sending)
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 429, 429]
    assert sorted(r.max_cost_usd for r in fake.requests) == pytest.approx([0.001, 0.003, 0.003, 0.003])
    assert [t.result().status_code for t in refused] == [429, 429]
    # The day is held, not spent: what the runs in flight do not spend comes back when they end.
    assert [t.result().headers["retry-after"] for t in refused] == ["5", "5"]


async def test_a_failed_run_is_charged_what_the_orchestrator_says_it_spent(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    async def fail(_: FakeOrchestrator, context: Context) -> Any:
        yield RunEvent(text_delta="")
        await context.abort(
            grpc.StatusCode.UNAVAILABLE, "synthesis failed", trailing_metadata=((SPENT_TRAILER, "0.004"),)
        )

    fake.script = fail
    gateway = await start_gateway(spend_limit_usd_per_day=0.01)
    async with http(gateway.url, "alice") as alice:
        failed = await alice.post("/v1/chat/completions", json=CHAT)
        fake.script = play(HAPPY_RUN)
        after = await alice.post("/v1/chat/completions", json=CHAT)
    assert failed.status_code == 503
    assert fake.requests[-1].max_cost_usd == pytest.approx(0.006)
    assert float(after.headers["x-budget-remaining-usd"]) == pytest.approx(0.006 - RUN_COST, abs=1e-6)


async def test_a_cap_too_small_because_of_the_day_is_insufficient_quota(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    fake.script = play([], fail_with=(grpc.StatusCode.FAILED_PRECONDITION, "cost cap: planning alone may cost $1"))
    gateway = await start_gateway(spend_limit_usd_per_day=0.01)
    async with http(gateway.url, "alice") as alice:
        response = await alice.post("/v1/chat/completions", json=CHAT)
    error = assert_openai_error(response, 429, type="insufficient_quota", code="insufficient_quota")
    assert "planning alone may cost" in error["message"]


async def _done(tasks: list[asyncio.Task[httpx.Response]], count: int) -> set[asyncio.Task[httpx.Response]]:
    """The first ``count`` tasks to finish (a refusal answers at once; a granted run waits for the fake)."""
    done: set[asyncio.Task[httpx.Response]] = set()
    async with asyncio.timeout(10):
        while len(done) < count:
            finished, _ = await asyncio.wait([t for t in tasks if t not in done], return_when=asyncio.FIRST_COMPLETED)
            done |= finished
    return done
