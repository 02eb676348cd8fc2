"""Chat completion errors: auth, validation, size, and gRPC statuses mapped before the first byte."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import openai
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

USER = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, **expected: Any) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    for key, value in expected.items():
        assert error[key] == value, (key, error)
    assert response.headers.get("x-request-id")
    return error


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no header", {}),
        ("not bearer", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("malformed", {"Authorization": "Bearer not-a-jwt"}),
        ("bad signature", {"Authorization": f"Bearer {mint_token(secret='another-secret-' + 'x' * 32)}"}),
        ("expired", {"Authorization": f"Bearer {mint_token(ttl_s=-60)}"}),
        ("no sub", {"Authorization": f"Bearer {mint_token(subject=None)}"}),
    ],
)
async def test_401_with_www_authenticate(gateway: Gateway, case: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
            response = await client.request(method, path, json={"model": MODEL, "messages": USER}, headers=headers)
            assert_openai_error(response, 401, type="authentication_error", code="invalid_api_key")
            assert response.headers["www-authenticate"].startswith("Bearer"), case


async def test_sdk_sees_authentication_error(gateway: Gateway) -> None:
    async with gateway.openai(mint_token(ttl_s=-60)) as client:
        with pytest.raises(openai.AuthenticationError, match="expired"):
            await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "file",
                                "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": USER, "n": 2}, "n"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [*USER, {"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "messages[1].role"),
    ],
)
async def test_400_invalid_requests(gateway: Gateway, fake: FakeOrchestrator, payload: Any, param: str) -> None:
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, **payload})
    assert_openai_error(response, 400, type="invalid_request_error", param=param)
    assert fake.requests == []


async def test_400_malformed_json(gateway: Gateway) -> None:
    async with gateway.http() as client:
        response = await client.post(
            "/v1/chat/completions",
            content=b'{"model": "agentmesh", "messages": [',
            headers={"Content-Type": "application/json"},
        )
    error = assert_openai_error(response, 400, type="invalid_request_error")
    assert "JSON" in error["message"]


async def test_400_body_that_is_not_json(gateway: Gateway) -> None:
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", data={"model": MODEL})
    error = assert_openai_error(response, 400, type="invalid_request_error")
    assert "application/json" in error["message"]


async def test_404_unknown_model(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": USER, "max_tokens": 0}, "max_tokens"),
    ],
)
async def test_422_schema_violation_in_openai_shape(gateway: Gateway, payload: Any, param: str) -> None:
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json=payload)
    assert "detail" not in response.json()
    assert_openai_error(response, 422, type="invalid_request_error", param=param)


async def test_413_body_too_large(start_gateway: GatewayFactory, fake: FakeOrchestrator) -> None:
    gateway = await start_gateway(max_request_body_size=1024)
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 2048}]}
    async with gateway.http() as client:
        declared = await client.post("/v1/chat/completions", json=payload)
        assert_openai_error(declared, 413, type="invalid_request_error", code="request_too_large")

        async def chunked() -> Any:
            for _ in range(4):
                yield b"x" * 512

        streamed = await client.post(
            "/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"}
        )
        assert_openai_error(streamed, 413, type="invalid_request_error", code="request_too_large")
        assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert fake.requests == []


STATUS_CASES = [
    (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable_error", True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout_error", False),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limit_error", True),
    (grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request_error", False),
    (grpc.StatusCode.UNAUTHENTICATED, 502, "upstream_error", False),
    (grpc.StatusCode.INTERNAL, 500, "server_error", False),
]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize(
    ("code", "status", "type_", "retry_after"), STATUS_CASES, ids=[c[0].name for c in STATUS_CASES]
)
async def test_grpc_status_before_first_byte(
    gateway: Gateway,
    fake: FakeOrchestrator,
    stream: bool,
    code: grpc.StatusCode,
    status: int,
    type_: str,
    retry_after: bool,
) -> None:
    fake.script = play([], fail_with=(code, f"planning: {code.name.lower()} from the model"))
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": stream})
    error = assert_openai_error(response, status, type=type_, code=code.name.lower())
    assert error["message"] == f"planning: {code.name.lower()} from the model"
    assert response.headers["content-type"].startswith("application/json")
    assert ("retry-after" in response.headers) is retry_after


async def test_sdk_sees_rate_limit(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play([], fail_with=(grpc.StatusCode.RESOURCE_EXHAUSTED, "planning: model rate limited"))
    async with gateway.openai() as client:
        with pytest.raises(openai.RateLimitError, match="planning: model rate limited"):
            await client.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]


async def test_request_timeout_is_the_run_deadline(start_gateway: GatewayFactory, fake: FakeOrchestrator) -> None:
    gateway = await start_gateway(request_timeout=0.2)
    fake.script = play([], wait_after=0)
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER})
    assert_openai_error(response, 504, type="timeout_error", code="deadline_exceeded")


async def test_orchestrator_down_is_503(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(target=unused_target())
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": True})
    assert_openai_error(response, 503, type="service_unavailable_error", code="unavailable")
    assert response.headers["retry-after"].isdigit()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_message_over_grpc_s_size_limit_is_413_in_our_words(
    gateway: Gateway, fake: FakeOrchestrator, stream: bool
) -> None:
    grpc_words = "Received message larger than max (40000000 vs. 33554432)"
    fake.script = play([], fail_with=(grpc.StatusCode.RESOURCE_EXHAUSTED, grpc_words), own=False)
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": stream})
    error = assert_openai_error(response, 413, type="invalid_request_error", code="request_too_large")
    assert "larger than max" not in error["message"] and "33554432" not in error["message"]
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
    ],
)
async def test_grpc_s_own_details_never_reach_the_client(
    gateway: Gateway, fake: FakeOrchestrator, code: grpc.StatusCode, status: int
) -> None:
    leak = "failed to connect to all addresses; last error: ipv4:10.1.2.3:50051: Connection refused"
    fake.script = play([], fail_with=(code, leak), own=False)
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER})
    error = assert_openai_error(response, status)
    assert "10.1.2.3" not in error["message"] and "addresses" not in error["message"]


async def test_after_the_first_byte_a_size_error_is_our_words_too(gateway: Gateway, fake: FakeOrchestrator) -> None:
    grpc_words = "Sent message larger than max (40000000 vs. 33554432)"
    fake.script = play(HAPPY_RUN[:2], fail_with=(grpc.StatusCode.RESOURCE_EXHAUSTED, grpc_words), own=False)
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": USER, "stream": True})
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "request_too_large" and "larger than max" not in error["message"]
