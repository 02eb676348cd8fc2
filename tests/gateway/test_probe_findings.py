"""What a hostile probe of the running gateway found (issue 14): metric cardinality, secrets in the access log,
request ids, HEAD, the docs switch, non-JSON numbers."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from agentmesh.request_context import sane_request_id
from tests.gateway.conftest import MODEL, FakeOrchestrator, Gateway, GatewayFactory, mint_token
from tests.gateway.test_chat_errors import assert_openai_error

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def series(metrics_text: str, name: str) -> list[str]:
    return [line for line in metrics_text.splitlines() if line.startswith(name + "{")]


async def test_made_up_methods_are_one_label_value(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for index in range(20):
            await client.request(f"PROBE{index}", "/health")
        await client.request("GET", "/health")
        text = (await client.get("/metrics")).text
    methods = {
        match.group(1)
        for line in series(text, "agentmesh_http_requests_total")
        if (match := re.search(r'method="([^"]*)"', line))
    }
    assert not any(method.startswith("PROBE") for method in methods), methods
    assert {"GET", "other"} <= methods


async def test_the_access_log_has_no_query_strings(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    secret = mint_token()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await client.get("/health", params={"access_token": secret})
        await client.get("/v1/models", params={"api_key": secret})
    access = [record for record in caplog.records if "/health" in record.getMessage()]
    assert access, "no access log line"
    for record in caplog.records:
        if record.name.startswith("httpx"):
            continue  # the test's own client, which logs its URLs
        assert secret not in record.getMessage(), record.getMessage()
        assert secret not in str(vars(record)), record.name


def test_the_sanitizer_matches_the_whole_id() -> None:
    assert sane_request_id("abc-1.2_3") == "abc-1.2_3"
    for bad in ("abc\n", "abc\r\n", "\nabc", "a" * 129, ""):
        assert sane_request_id(bad) is None, repr(bad)


async def test_a_reused_client_id_is_kept_for_correlation_but_each_request_is_unique(
    gateway: Gateway, fake: FakeOrchestrator
) -> None:
    async with gateway.http() as client:
        answers = [
            await client.post("/v1/chat/completions", json=CHAT, headers={"X-Request-ID": "someone-elses-id"})
            for _ in range(2)
        ]
    assert [a.headers["x-request-id"] for a in answers] == ["someone-elses-id"] * 2
    internal = [a.json()["id"].removeprefix("chatcmpl-") for a in answers]
    assert internal == fake.request_ids
    assert internal[0] != internal[1]
    for request_id in internal:
        assert re.fullmatch(r"someone-elses-id-[0-9a-f]{12}", request_id), request_id


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/metrics", "/v1/models"])
async def test_head_is_get_without_a_body(gateway: Gateway, path: str) -> None:
    async with gateway.http() as client:
        got = await client.get(path)
        head = await client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_head_still_needs_a_token(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        assert (await anonymous.head("/v1/models")).status_code == 401


async def test_the_docs_can_be_turned_off(start_gateway: GatewayFactory) -> None:
    shown, hidden = await start_gateway(), await start_gateway(api_docs_enabled=False)
    for path in ("/docs", "/redoc", "/openapi.json"):
        async with httpx.AsyncClient(base_url=shown.url) as client:
            assert (await client.get(path)).status_code == 200, path
        async with httpx.AsyncClient(base_url=hidden.url) as client:
            assert (await client.get(path)).status_code == 404, path
    async with hidden.http() as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(gateway: Gateway, fake: FakeOrchestrator, number: str) -> None:
    body = f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "temperature": {number}}}'
    async with gateway.http() as client:
        response = await client.post(
            "/v1/chat/completions", content=body.encode(), headers={"Content-Type": "application/json"}
        )
    error = assert_openai_error(response, 400, type="invalid_request_error")
    assert number in error["message"]
    assert fake.requests == []
