"""Rate limits per verified subject and per client IP, the open-completions cap, and a failing limiter storage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    mint_token,
    play,
    unused_target,
)
from tests.gateway.test_chat_errors import assert_openai_error

CHAT: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
WINDOW_S = 60


def client(gateway: Gateway, subject: str = "alice", source: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
    """A client for ``subject`` whose connections come from ``source`` (any 127/8 address reaches loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    headers = {"Authorization": f"Bearer {mint_token(subject)}", **headers}
    return httpx.AsyncClient(base_url=gateway.url, transport=transport, headers=headers, timeout=20)


def assert_limited(response: httpx.Response, who: str) -> None:
    """A 429 whose Retry-After is when the window's first request leaves it: every budget here is per minute,
    spent within the test's few seconds (the margin is for slow machines, not for the limiter)."""
    error = assert_openai_error(response, 429, type="rate_limit_error", code="rate_limit_exceeded")
    assert who in error["message"]
    retry_after = int(response.headers["retry-after"])
    assert WINDOW_S - 15 <= retry_after <= WINDOW_S
    assert f"retry after {retry_after} s" in error["message"]
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == str(retry_after)


async def test_n_plus_first_chat_request_gets_429_with_retry_after(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    gateway = await start_gateway(rate_limit_chat_completions="3/minute")
    async with client(gateway) as alice:
        started = time.time()
        allowed = [await alice.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
        refused = await alice.post("/v1/chat/completions", json=CHAT)
        elapsed = time.time() - started
        streamed = await alice.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["x-ratelimit-limit"] for r in allowed] == ["3", "3", "3"]
    assert [r.headers["x-ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert all(0 < int(r.headers["x-ratelimit-reset"]) <= WINDOW_S for r in allowed)
    # The IP's own budget (RATE_LIMIT_PER_IP) is generous: the subject's runs out.
    assert_limited(refused, "token subject (3 per 1 minute)")
    # Exactly when the first request leaves the window, rounded up to whole seconds.
    assert WINDOW_S - elapsed - 1 <= int(refused.headers["retry-after"]) <= WINDOW_S
    assert_limited(streamed, "token subject")
    assert len(fake.requests) == 3


async def test_users_behind_one_ip_each_have_their_own_budget(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_chat_completions="3/minute")
    async with client(gateway, "alice") as alice, client(gateway, "bob") as bob_same_ip:
        assert [(await alice.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(3)] == [200] * 3
        assert_limited(await alice.post("/v1/chat/completions", json=CHAT), "token subject")
        assert (await bob_same_ip.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_ip_and_subject_budgets_are_independent(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_default="2/minute", rate_limit_per_ip="2/minute")
    async with client(gateway, "alice") as alice, client(gateway, "bob") as bob_same_ip:
        assert [(await alice.get("/v1/models")).status_code for _ in range(2)] == [200, 200]
        # Bob has his whole budget, but this IP has spent its own.
        assert_limited(await bob_same_ip.get("/v1/models"), "client IP")
    async with client(gateway, "bob", source="127.0.0.2") as bob, client(gateway, "alice", "127.0.0.3") as alice_moved:
        assert (await bob.get("/v1/models")).status_code == 200
        # A fresh IP does not give Alice a fresh budget.
        assert_limited(await alice_moved.get("/v1/models"), "token subject")


async def test_chat_and_other_routes_have_separate_budgets(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_chat_completions="1/minute", rate_limit_default="5/minute")
    async with client(gateway) as alice:
        assert (await alice.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert_limited(await alice.post("/v1/chat/completions", json=CHAT), "(1 per 1 minute)")
        models = await alice.get("/v1/models")
    assert models.status_code == 200
    assert models.headers["x-ratelimit-limit"] == "5"


async def test_budget_is_spent_only_for_verified_subjects(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_default="2/minute")
    forged = mint_token("alice", secret="not-the-gateway-secret-" + "x" * 32)
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        async with httpx.AsyncClient(
            base_url=gateway.url,
            transport=httpx.AsyncHTTPTransport(local_address=source),
            headers={"Authorization": f"Bearer {forged}"},
        ) as attacker:
            assert (await attacker.get("/v1/models")).status_code == 401
    async with client(gateway, "alice") as alice:
        assert [(await alice.get("/v1/models")).status_code for _ in range(2)] == [200, 200]


async def test_unauthenticated_requests_spend_the_ip_budget(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_per_ip="2/minute")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": "Bearer nonsense"}) as anonymous:
        assert [(await anonymous.get("/v1/models")).status_code for _ in range(2)] == [401, 401]
        assert_limited(await anonymous.get("/v1/models"), "client IP's unauthenticated requests")


async def test_unauthenticated_requests_leave_the_users_of_their_ip_unaffected(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    gateway = await start_gateway(rate_limit_per_ip="100/minute")
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": "Bearer nonsense"}) as anonymous:
        statuses = [(await anonymous.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(101)]
    assert statuses == [401] * 100 + [429]
    async with client(gateway, "alice") as alice:
        assert (await alice.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await alice.get("/v1/models")).status_code == 200
    assert len(fake.requests) == 1


async def test_health_is_never_limited(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_default="1/minute", rate_limit_chat_completions="1/minute")
    async with client(gateway) as alice:
        statuses = {(await alice.get("/health")).status_code for _ in range(5)}
        health = await alice.get("/health")
    assert statuses == {200}
    assert "x-ratelimit-limit" not in health.headers


async def test_disabled(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_enabled=False, rate_limit_default="1/minute")
    async with client(gateway) as alice:
        responses = [await alice.get("/v1/models") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "x-ratelimit-limit" not in responses[0].headers


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_for_counts_only_from_trusted_proxies(start_gateway: GatewayFactory, trusted: bool) -> None:
    gateway = await start_gateway(rate_limit_per_ip="1/minute", trust_proxy_headers=trusted)
    async with client(gateway, "alice", **{"X-Forwarded-For": "203.0.113.1"}) as first:
        assert (await first.get("/v1/models")).status_code == 200
    async with client(gateway, "bob", **{"X-Forwarded-For": "203.0.113.2"}) as second:
        response = await second.get("/v1/models")
    if trusted:
        assert response.status_code == 200
    else:
        assert_limited(response, "client IP")


async def test_open_completions_per_subject_are_capped(start_gateway: GatewayFactory, fake: FakeOrchestrator) -> None:
    gateway = await start_gateway(max_concurrent_streams_per_user=1)
    fake.script = play(HAPPY_RUN, wait_after=1)
    async with client(gateway, "alice") as alice, client(gateway, "bob") as bob:
        async with alice.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as open_stream:
            assert open_stream.status_code == 200
            second = await alice.post("/v1/chat/completions", json=CHAT)
            error = assert_openai_error(second, 429, type="rate_limit_error", code="too_many_concurrent_requests")
            assert "at most 1" in error["message"]
            assert second.headers["retry-after"] == "1"
            async with bob.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as other:
                assert other.status_code == 200
                fake.release.set()
                await other.aread()
            await open_stream.aread()
        again = await alice.post("/v1/chat/completions", json=CHAT)
    assert again.status_code == 200


async def test_unreachable_storage_fails_closed(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_storage_uri=f"redis://{unused_target()}")
    async with client(gateway) as alice:
        response = await alice.get("/v1/models")
        health = await alice.get("/health")
    assert_openai_error(response, 503, type="service_unavailable_error", code="rate_limiter_unavailable")
    assert response.headers["retry-after"].isdigit()
    assert health.status_code == 200


async def test_concurrent_requests_never_exceed_the_budget(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_default="10/minute")
    async with client(gateway) as alice:
        responses = await asyncio.gather(*(alice.get("/v1/models") for _ in range(25)))
    assert sorted(r.status_code for r in responses) == [200] * 10 + [429] * 15
