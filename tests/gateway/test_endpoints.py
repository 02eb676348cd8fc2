"""Non-streaming completions, /v1/models and the health endpoints."""

from __future__ import annotations

import httpx
import pytest

from agentmesh.rpc.server import GrpcServer
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.gateway.conftest import (
    MODEL,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    gateway_settings,
    start_fake,
    unused_target,
)


async def test_sdk_non_streaming_completion(gateway: Gateway, fake: FakeOrchestrator) -> None:
    async with gateway.openai() as client:
        completion = await client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello"}]},
            ],
            max_completion_tokens=50,
            temperature=0.2,
            top_p=0.9,
        )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello, world"
    assert choice.finish_reason == "stop"
    assert "Plan: 2 subtasks" in (choice.message.model_extra or {})["reasoning_content"]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        65,
        27,
        92,
    )
    usage_extra = completion.usage.model_extra or {}
    assert usage_extra["cost_usd"] == pytest.approx(0.0045)
    assert usage_extra["agents"][0]["agent"] == "orchestrator"

    (request,) = fake.requests
    assert [(m.role, m.content) for m in request.messages] == [("system", "Be brief."), ("user", "Say\nhello")]
    assert request.max_output_tokens == 50


async def test_models_lists_the_service_model_first_then_one_per_team(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        models = [model async for model in client.models.list()]
    model = models[0]
    assert [m.id for m in models] == [MODEL, f"{MODEL}/research"]  # the shipped teams: default, research
    assert model.id == MODEL
    assert model.object == "model"
    assert model.owned_by == "agentmesh"


async def test_models_lists_exactly_the_openai_fields(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(service_model_name="mesh")
    async with gateway.http() as client:
        body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    created = body["data"][0]["created"]
    assert body["data"] == [
        {"id": "mesh", "object": "model", "created": created, "owned_by": "agentmesh"},
        {"id": "mesh/research", "object": "model", "created": created, "owned_by": "agentmesh"},
    ]


def test_the_gateway_reads_no_model_settings() -> None:
    model_settings = {"llm_provider", "model_pricing_file", "retry_max_attempts", "circuit_breaker_timeout"}
    assert not model_settings & GatewaySettings.model_fields.keys()


async def test_health_is_always_ok(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(target=unused_target())
    async with gateway.http() as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_orchestrator_serving(gateway: Gateway) -> None:
    async with gateway.http() as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def _assert_not_ready(gateway: Gateway) -> None:
    async with gateway.http() as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable_error"
    assert response.headers["retry-after"].isdigit()


async def test_not_ready_when_orchestrator_not_serving(start_gateway: GatewayFactory) -> None:
    server: GrpcServer = await start_fake(FakeOrchestrator(), serving=False)
    try:
        await _assert_not_ready(await start_gateway(target=f"127.0.0.1:{server.port}"))
    finally:
        await server.stop(grace=0)


async def test_not_ready_when_orchestrator_not_running(start_gateway: GatewayFactory) -> None:
    await _assert_not_ready(await start_gateway(target=unused_target()))


async def test_unhandled_error_is_500_in_openai_shape_with_request_id() -> None:
    app = create_app(gateway_settings(unused_target()))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "secret detail" not in error["message"]
