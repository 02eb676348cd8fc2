"""The edge's other duties: security headers, CORS, request ids on every answer, and limits on a request's shape."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    gateway_settings,
    play,
    unused_target,
)
from tests.gateway.test_chat_errors import assert_openai_error

USER = [{"role": "user", "content": "hi"}]
CHAT: dict[str, Any] = {"model": MODEL, "messages": USER}
HARDENING = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


def assert_hardened(response: httpx.Response) -> None:
    for name, value in HARDENING.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert response.headers["content-security-policy"] == JSON_CSP
    assert response.headers.get("x-request-id")


async def test_security_headers_on_every_kind_of_answer(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(max_request_body_size=256, rate_limit_default="1/minute")
    async with gateway.http() as client:
        answers = {
            "200 json": await client.post("/v1/chat/completions", json=CHAT),
            "200 health": await client.get("/health"),
            "401": await client.get("/v1/models", headers={"Authorization": "Bearer x"}),
            "404": await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}),
            "413": await client.post("/v1/chat/completions", json={**CHAT, "user": "x" * 512}),
            "422": await client.post("/v1/chat/completions", json={"model": MODEL}),
        }
        await client.get("/v1/models")
        answers["429"] = await client.get("/v1/models")  # the subject's second in a minute
        async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            answers["200 stream"] = stream
            assert [line async for line in stream.aiter_lines() if line][-1] == "data: [DONE]"
    assert [a.status_code for a in answers.values()] == [200, 200, 401, 404, 413, 422, 429, 200]
    for kind, response in answers.items():
        assert_hardened(response)
        assert "strict-transport-security" not in response.headers, kind
    for kind in ("200 json", "200 stream", "401", "404", "413", "422", "429"):
        assert answers[kind].headers["cache-control"] == "no-store", kind
    assert answers["200 stream"].headers["content-type"].startswith("text/event-stream")
    assert answers["200 stream"].headers["x-accel-buffering"] == "no"


async def test_hsts_when_configured_and_docs_keep_their_scripts(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(hsts_max_age=31536000)
    async with gateway.http() as client:
        models = await client.get("/v1/models")
        docs = await client.get("/docs")
    assert models.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert docs.headers["content-type"].startswith("text/html")
    assert "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"


async def test_unhandled_error_still_carries_the_security_headers() -> None:
    app = create_app(gateway_settings(unused_target(), hsts_max_age=600))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert_hardened(response)
    assert response.headers["strict-transport-security"].startswith("max-age=600")


async def test_cors_preflight_needs_no_token_and_exposes_the_edge_headers(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(cors_allow_origins="https://app.example, https://other.example")
    preflight_headers = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-lang",
    }
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        preflight = await anonymous.options("/v1/chat/completions", headers=preflight_headers)
        foreign = await anonymous.options(
            "/v1/chat/completions", headers={**preflight_headers, "Origin": "https://evil.example"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers
    assert foreign.status_code == 400
    assert "access-control-allow-origin" not in foreign.headers

    async with gateway.http() as client:
        simple = await client.get("/v1/models", headers={"Origin": "https://app.example"})
        refused = await client.get("/v1/models", headers={"Origin": "https://app.example", "Authorization": "x"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    exposed = simple.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "retry-after", "x-ratelimit-remaining"} <= set(exposed.replace(" ", "").split(","))
    # A browser client can read why it was refused.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example"


async def test_no_cors_headers_unless_configured(gateway: Gateway) -> None:
    async with gateway.http() as client:
        response = await client.get("/v1/models", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("trace-abc.123_X", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("ünïcode", False),
    ],
)
async def test_request_id_accepted_only_when_sane(
    gateway: Gateway, fake: FakeOrchestrator, sent: str, kept: bool
) -> None:
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Request-ID": sent.encode()})
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    assert len(echoed) <= 128
    # The request's own id: the client's (its first 115 characters) with a unique suffix, or the generated one.
    request_id = response.json()["id"].removeprefix("chatcmpl-")
    assert re.fullmatch(rf"{re.escape(sent[:115])}-[0-9a-f]{{12}}", request_id) if kept else request_id == echoed
    assert len(request_id) <= 128
    assert fake.request_ids == [request_id]


async def test_request_id_on_edge_refusals(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_default="1/minute", max_request_body_size=64)
    async with gateway.http() as client:
        statuses = []
        for index in range(2):
            response = await client.get("/v1/models", headers={"X-Request-ID": f"models-{index}"})
            statuses.append(response.status_code)
            assert response.headers["x-request-id"] == f"models-{index}"
        too_large = await client.post(
            "/v1/chat/completions", json={**CHAT, "user": "x" * 100}, headers={"X-Request-ID": "big-1"}
        )
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        unauthorized = await anonymous.get("/v1/models", headers={"X-Request-ID": "anon-1"})
    assert statuses == [200, 429]
    assert too_large.status_code == 413 and too_large.headers["x-request-id"] == "big-1"
    assert unauthorized.headers["x-request-id"] == "anon-1"


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"role": "user", "content": "hi"}] * 4, "too_many_messages"),
        ([{"role": "user", "content": "x" * 11}], "context_length_exceeded"),
        ([{"role": "user", "content": [{"type": "text", "text": "x" * 6}, {"type": "text", "text": "y" * 6}]}], None),
        ([{"role": "system", "content": "x" * 6}, {"role": "user", "content": "y" * 6}], None),
    ],
)
async def test_message_count_and_size_limits(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, messages: list[Any], code: str | None
) -> None:
    gateway = await start_gateway(max_messages=3, max_total_chars=10)
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "messages": messages})
    error = assert_openai_error(response, 400, type="invalid_request_error", param="messages")
    assert error["code"] == (code or "context_length_exceeded")
    assert "at most" in error["message"]
    assert fake.requests == []


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"model": "agentmesh", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "agentmesh", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b"\x00\x01\x02",
        b"",
        b"null",
        b'"a string"',
        b'{"model": 1e999999, "messages": []}',
    ],
)
async def test_hostile_bodies_get_4xx_in_openai_shape(gateway: Gateway, fake: FakeOrchestrator, body: bytes) -> None:
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert_openai_error(response, response.status_code)
    assert "Traceback" not in response.text
    assert fake.requests == []


async def test_the_whole_edge_relays_the_stream_unbuffered(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    gateway = await start_gateway(
        max_concurrent_streams_per_user=2, cors_allow_origins="https://app.example", hsts_max_age=60
    )
    fake.script = play(HAPPY_RUN, wait_after=1)
    async with (
        gateway.http() as client,
        client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream,
    ):
        assert stream.headers["x-ratelimit-limit"] == "60"
        assert stream.headers["cache-control"] == "no-store"
        lines = stream.aiter_lines()
        # The run is paused after its first event: this chunk can only arrive if nothing on the way buffers.
        first = await anext(line async for line in lines if line.startswith("data: "))
        assert '"role":"assistant"' in first
        fake.release.set()
        rest = [line async for line in lines if line]
    assert rest[-1] == "data: [DONE]"
