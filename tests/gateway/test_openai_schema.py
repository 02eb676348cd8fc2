"""Every body the gateway sends matches OpenAI's published schemas (vendored in tests/schemas, source named there):
the completion, each stream chunk, the models list, and each error, before and after the first byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.gateway.conftest import HAPPY_RUN, FakeOrchestrator, Gateway, GatewayFactory, mint_token, play, unused_target

SPEC_FILE = Path(__file__).resolve().parents[1] / "schemas" / "openai_openapi_chat.json"
SPEC_URI = "urn:openai-openapi"
CHAT = {"model": "agentmesh", "messages": [{"role": "user", "content": "hi"}]}


def json_schema(node: Any) -> Any:
    """OpenAPI's ``nullable: true`` (which the spec still uses beside 3.1's null types) as JSON Schema's own."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: json_schema(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") is True else converted


@pytest.fixture(scope="module")
def registry() -> Registry:
    spec = json_schema(json.loads(SPEC_FILE.read_text()))
    return Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))  # OpenAPI 3.1 is JSON Schema 2020-12


def check(registry: Registry, schema_name: str, body: Any) -> None:
    reference = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft202012Validator(reference, registry=registry)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{schema_name} violated by {json.dumps(body)[:500]}:\n" + "\n".join(errors)


def sse_data(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def _post(gateway: Gateway, body: Any, token: str | None = None) -> httpx.Response:
    async with gateway.http(token) as client:
        return await client.post("/v1/chat/completions", json=body)


async def test_the_completion_matches(gateway: Gateway, registry: Registry) -> None:
    response = await _post(gateway, CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["logprobs"] is None and body["choices"][0]["message"]["refusal"] is None
    check(registry, "CreateChatCompletionResponse", body)


@pytest.mark.parametrize("include_usage", [True, False])
async def test_every_stream_chunk_matches(gateway: Gateway, registry: Registry, include_usage: bool) -> None:
    response = await _post(gateway, {**CHAT, "stream": True, "stream_options": {"include_usage": include_usage}})
    chunks = sse_data(response.text)
    assert len(chunks) > 3 and response.text.rstrip().endswith("data: [DONE]")
    for chunk in chunks:  # progress, text, finish and (with include_usage) the usage chunk
        check(registry, "CreateChatCompletionStreamResponse", chunk)


async def test_the_models_list_matches(gateway: Gateway, registry: Registry) -> None:
    async with gateway.http() as client:
        response = await client.get("/v1/models")
    check(registry, "ListModelsResponse", response.json())


async def test_an_error_after_the_first_byte_matches(
    gateway: Gateway, fake: FakeOrchestrator, registry: Registry
) -> None:
    fake.script = play(HAPPY_RUN[:3], fail_with=(grpc.StatusCode.UNAVAILABLE, "coordination: workers unavailable"))
    response = await _post(gateway, {**CHAT, "stream": True})
    (error,) = [data for data in sse_data(response.text) if "error" in data]
    check(registry, "ErrorResponse", error)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no token", 401),
        ("unknown model", 404),
        ("invalid request", 400),
        ("schema violation", 422),
        ("model rate limited", 429),
        ("orchestrator fails", 500),
    ],
)
async def test_each_error_before_the_first_byte_matches(
    gateway: Gateway, fake: FakeOrchestrator, registry: Registry, case: str, status: int
) -> None:
    body: Any = CHAT
    token = None
    if case == "no token":
        token = "not-a-jwt"
    elif case == "unknown model":
        body = {**CHAT, "model": "gpt-nothing"}
    elif case == "invalid request":
        body = {**CHAT, "messages": [{"role": "assistant", "content": "no user turn"}]}
    elif case == "schema violation":
        body = {**CHAT, "messages": "not a list"}
    elif case == "model rate limited":
        fake.script = play([], fail_with=(grpc.StatusCode.RESOURCE_EXHAUSTED, "planning: model rate limited"))
    else:
        fake.script = play([], fail_with=(grpc.StatusCode.INTERNAL, "planning: broke"))
    response = await _post(gateway, body, token or mint_token())
    assert response.status_code == status
    check(registry, "ErrorResponse", response.json())


async def test_errors_of_the_edge_match(start_gateway: GatewayFactory, registry: Registry) -> None:
    small = await start_gateway(max_request_body_size=64)
    too_large = await _post(small, {**CHAT, "messages": [{"role": "user", "content": "x" * 200}]})
    down = await start_gateway(target=unused_target())
    unavailable = await _post(down, CHAT)
    assert (too_large.status_code, unavailable.status_code) == (413, 503)
    for response in (too_large, unavailable):
        check(registry, "ErrorResponse", response.json())
