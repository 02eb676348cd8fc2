"""Streaming chat completions through uvicorn: chunk invariants, progress, keep-alive, errors, cancellation."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import grpc
import openai
import pytest

from tests.gateway.conftest import HAPPY_RUN, MODEL, FakeOrchestrator, Gateway, GatewayFactory, plan_event, play

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
CHAT = {"model": MODEL, "messages": MESSAGES, "stream": True}


async def raw_sse(gateway: Gateway, payload: dict[str, Any] | None = None) -> list[str]:
    """The stream's non-empty lines, as sent."""
    async with gateway.http() as client, client.stream("POST", "/v1/chat/completions", json=payload or CHAT) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [line async for line in resp.aiter_lines() if line]


def data_of(lines: list[str]) -> list[Any]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


async def test_sdk_stream_chunk_invariants_with_usage(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    assert len({(c.id, c.created) for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in choice_chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in choice_chunks) == "Hello, world"

    usage_chunks = [c for c in chunks if c.usage is not None]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (65, 27, 92)
    extra = usage.model_extra or {}
    assert extra["cost_usd"] == pytest.approx(0.0045)
    assert [a["agent"] for a in extra["agents"]] == ["orchestrator", "worker", "synthesizer"]
    assert set(extra["agents"][1]) == {
        "agent",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cost_usd",
        "calls",
    }


async def test_raw_stream_without_include_usage(gateway: Gateway, fake: FakeOrchestrator) -> None:
    lines = await raw_sse(gateway)
    assert lines[-1] == "data: [DONE]"
    chunks = data_of(lines)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk["usage"] is None and len(chunk["choices"]) == 1 for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    (request,) = fake.requests
    assert [(m.role, m.content) for m in request.messages] == [("user", "Say hello")]


async def test_progress_is_reasoning_never_content(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        deltas = [chunk.choices[0].delta async for chunk in stream]

    progress = [d.model_extra or {} for d in deltas if (d.model_extra or {}).get("reasoning_content")]
    assert progress
    assert all(p["reasoning"] == p["reasoning_content"] for p in progress)
    text = "".join(p["reasoning_content"] for p in progress)
    assert "Plan: 2 subtasks\n1. Research the topic\n2. Draft the answer\n" in text
    assert "✓ Research the topic done in 1.2 s" in text
    assert "✓ Draft the answer done in 0.8 s" in text
    content = "".join(d.content or "" for d in deltas)
    assert content == "Hello, world"


async def test_stream_progress_none(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(stream_progress="none")
    chunks = data_of(await raw_sse(gateway))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert not [d for d in deltas if "reasoning_content" in d or "reasoning" in d]
    assert "".join(d.get("content", "") for d in deltas) == "Hello, world"


async def test_keepalive_comments_while_waiting(start_gateway: GatewayFactory, fake: FakeOrchestrator) -> None:
    gateway = await start_gateway(sse_keepalive_seconds=0.05)
    fake.script = play(HAPPY_RUN, wait_after=1)
    lines: list[str] = []
    async with gateway.http() as client, client.stream("POST", "/v1/chat/completions", json=CHAT) as resp:
        async for line in resp.aiter_lines():
            if line:
                lines.append(line)
            if line == ": keep-alive":
                fake.release.set()
    assert ": keep-alive" in lines
    assert lines[-1] == "data: [DONE]"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in data_of(lines)) == "Hello, world"


async def test_error_after_first_byte_is_an_event_then_done(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN[:2], fail_with=(grpc.StatusCode.UNAVAILABLE, "synthesis: synthesizer unavailable"))
    lines = await raw_sse(gateway)
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][len("data: ") :])
    assert error == {
        "error": {
            "message": "synthesis: synthesizer unavailable",
            "type": "service_unavailable_error",
            "param": None,
            "code": "unavailable",
        }
    }

    async with gateway.openai() as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="synthesis: synthesizer unavailable"):
            async for _ in stream:
                pass


async def test_client_disconnect_mid_stream_cancels_the_run(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play([plan_event()], wait_after=1)
    async with gateway.http() as client, client.stream("POST", "/v1/chat/completions", json=CHAT) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                break
    # Leaving the block closes the connection mid-stream.
    await asyncio.wait_for(fake.cancelled.wait(), timeout=10)


async def test_client_disconnect_before_first_event_cancels_the_run(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play([plan_event()], wait_after=0)
    async with gateway.http() as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "stream": False}))
        await asyncio.wait_for(fake.started.wait(), timeout=10)
        request.cancel()
        await asyncio.wait({request})
    await asyncio.wait_for(fake.cancelled.wait(), timeout=10)


async def test_request_id_is_echoed_and_propagated(gateway: Gateway, fake: FakeOrchestrator) -> None:
    async with gateway.http() as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json=CHAT, headers={"X-Request-ID": "trace-abc.123"}
        ) as resp:
            assert resp.headers["x-request-id"] == "trace-abc.123"
            chunks = data_of([line async for line in resp.aiter_lines() if line])
        (completion_id,) = {chunk["id"] for chunk in chunks}
        assert re.fullmatch(r"chatcmpl-trace-abc\.123-[0-9a-f]{12}", completion_id)

        insane = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
        generated = insane.headers["x-request-id"]
        assert generated and generated != "bad id\twith spaces"

        failed = await client.post("/v1/chat/completions", json={"model": MODEL}, headers={"X-Request-ID": "req-422"})
        assert failed.status_code == 422
        assert failed.headers["x-request-id"] == "req-422"
    assert fake.request_ids == [completion_id.removeprefix("chatcmpl-")]


async def test_a_stream_starts_and_keeps_alive_before_the_plan_exists(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    """Planning can take many seconds: the status line, the first chunk and keep-alives do not wait for it."""
    gateway = await start_gateway(sse_keepalive_seconds=0.05, stream_start_wait=0.1)
    fake.script = play(HAPPY_RUN, wait_after=0)  # no event at all until released
    lines: list[str] = []
    async with gateway.http() as client, client.stream("POST", "/v1/chat/completions", json=CHAT) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line:
                lines.append(line)
            if line == ": keep-alive" and not fake.release.is_set():
                # Still no plan, and the stream counts as open.
                metrics = (await client.get("/metrics")).text
                assert "agentmesh_streams_in_flight 1.0" in metrics
                fake.release.set()
    assert data_of(lines)[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert lines.index(": keep-alive") < next(i for i, line in enumerate(lines) if "Plan:" in line)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in data_of(lines)) == "Hello, world"
    assert lines[-1] == "data: [DONE]"
