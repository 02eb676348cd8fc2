"""OpenAIProvider against a fake OpenAI-compatible server speaking the real wire format on a loopback port."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from agentmesh.llm.openai import OpenAIProvider
from agentmesh.llm.provider import (
    AssistantTurn,
    AuthenticationFailed,
    BadRequest,
    ConversationItem,
    InvalidResponse,
    LLMProvider,
    Message,
    Prompt,
    ProviderError,
    RateLimited,
    StreamDone,
    StreamItem,
    TextDelta,
    TokenUsage,
    Tool,
    ToolChoice,
    ToolResult,
    ToolResults,
    ToolUse,
    TurnRequest,
    Unavailable,
    UserText,
)
from agentmesh.llm.retry import RetryingProvider
from agentmesh.request_context import request_id_var
from tests.service.conftest import FAST_RETRY
from tests.support.fake_openai import Behaviour, FakeOpenAI, spawn_fake_openai

API_KEY = "sk-proj-fake-openai-key-0123456789"
MODEL = "gpt-4.1-mini"
PROMPT = Prompt(
    model=MODEL,
    system="You are terse.",
    messages=[Message("user", "Compare two databases"), Message("assistant", "Which?"), Message("user", "pg\nsqlite")],
    max_tokens=256,
)
PLAN_TOOL = Tool(
    name="plan",
    description="Split the request into subtasks.",
    input_schema={"type": "object", "properties": {"subtasks": {"type": "array"}}, "required": ["subtasks"]},
)


def usage_of(recorded: dict[str, Any] | None) -> TokenUsage:
    """Our usage for what the fake reported: prompt tokens less the cached ones, which count apart."""
    assert recorded is not None, "the fake recorded no usage: the answer was not completed"
    cached = (recorded.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return TokenUsage(
        model=MODEL,
        input_tokens=recorded["prompt_tokens"] - cached,
        output_tokens=recorded["completion_tokens"],
        cache_read_input_tokens=cached,
    )


async def collect(items: AsyncIterator[StreamItem]) -> list[StreamItem]:
    return [item async for item in items]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=API_KEY) as running:
        yield running


@pytest.fixture
async def raw(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    """The provider alone: no retries."""
    provider = OpenAIProvider(api_key=API_KEY, base_url=f"{fake.base_url}/v1", timeout_s=5)
    try:
        yield provider
    finally:
        await provider.aclose()


@pytest.fixture
def provider(raw: OpenAIProvider) -> LLMProvider:
    """As the services use it: inside the retry wrapper."""
    return RetryingProvider(raw, FAST_RETRY)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but never listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# -- answers --


async def test_complete_sends_chat_completions_and_returns_text_and_usage(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    completion = await provider.complete(PROMPT)

    (request,) = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Compare two databases"},
        {"role": "assistant", "content": "Which?"},
        {"role": "user", "content": "pg\nsqlite"},
    ]
    assert request.body["max_tokens"] == 256  # a compatible server: the name every one of them knows
    assert not {"temperature", "top_p", "stream", "tools", "n"} & request.body.keys()
    assert completion.text == "fake answer: pg\nsqlite"
    assert completion.usage == usage_of(request.usage)


async def test_cached_prompt_tokens_are_reported_apart_and_missing_details_count_zero(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour(cache_read_input_tokens=1024), Behaviour(cache_read_input_tokens=None))

    cached = await provider.complete(PROMPT)
    plain = await provider.complete(PROMPT)

    first, second = fake.requests
    assert cached.usage.cache_read_input_tokens == 1024
    assert cached.usage.input_tokens == first.usage["prompt_tokens"] - 1024  # type: ignore[index]
    assert "prompt_tokens_details" not in (second.usage or {})
    assert plain.usage == usage_of(second.usage)


async def test_stream_yields_deltas_then_one_done_with_the_usage_chunk(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(text="one two three", cache_read_input_tokens=64))

    items = await collect(provider.stream(PROMPT))

    assert items[:-1] == [TextDelta("one "), TextDelta("two "), TextDelta("three")]
    (request,) = fake.requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert items[-1] == StreamDone(usage_of(request.usage), stop_reason="stop")
    assert items[-1].usage.cache_read_input_tokens == 64


async def test_a_stream_without_usage_counts_zero_tokens_and_says_so_once(
    provider: LLMProvider, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set_default(Behaviour(text="hello", no_stream_usage=True))  # a server ignoring include_usage

    with caplog.at_level(logging.WARNING, logger="agentmesh.llm.openai"):
        first = await collect(provider.stream(PROMPT))
        second = await collect(provider.stream(PROMPT))

    assert first == second == [TextDelta("hello"), StreamDone(TokenUsage(model=MODEL), stop_reason="stop")]
    [warning] = [r for r in caplog.records if r.name == "agentmesh.llm.openai"]
    assert "sent no usage" in warning.getMessage()


async def test_call_tool_forces_the_function_and_returns_its_arguments(provider: LLMProvider, fake: FakeOpenAI) -> None:
    call = await provider.call_tool(PROMPT, PLAN_TOOL)

    (request,) = fake.requests
    assert request.body["tool_choice"] == {"type": "function", "function": {"name": "plan"}}
    assert request.body["tools"] == [
        {
            "type": "function",
            "function": {"name": "plan", "description": PLAN_TOOL.description, "parameters": PLAN_TOOL.input_schema},
        }
    ]
    assert call.input == request.answer
    assert [s["instruction"] for s in call.input["subtasks"]] == ["pg", "sqlite"]
    assert call.fallback_reason == ""
    assert call.usage == usage_of(request.usage)


async def test_a_model_answering_without_the_forced_call_is_an_invalid_response(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour(refuse_tool=True, text="I would rather chat"))

    with pytest.raises(InvalidResponse, match="without calling the forced tool 'plan'"):
        await provider.call_tool(PROMPT, PLAN_TOOL)
    assert len(fake.requests) == 1


async def test_a_json_schema_answer_that_is_not_json_is_an_invalid_response(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.set_default(Behaviour(refuse_tools=True, text="Sure! Here is the plan: ..."))

    with pytest.raises(InvalidResponse, match="are not JSON"):
        await provider.call_tool(PROMPT, PLAN_TOOL)
    assert [r.status for r in fake.requests] == [400, 200]


# -- servers without tools --


async def test_a_server_refusing_tools_gets_the_schema_as_response_format_once_learnt(
    provider: LLMProvider, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set_default(Behaviour(refuse_tools=True))

    with caplog.at_level(logging.WARNING, logger="agentmesh.llm.openai"):
        first = await provider.call_tool(PROMPT, PLAN_TOOL)
        second = await provider.call_tool(PROMPT, PLAN_TOOL)

    refused, schema, schema_again = fake.requests
    assert (refused.status, refused.body["tool_choice"]["function"]["name"]) == (400, "plan")
    for request in (schema, schema_again):
        assert "tools" not in request.body and "tool_choice" not in request.body
        assert request.body["response_format"]["type"] == "json_schema"
        assert request.body["response_format"]["json_schema"]["name"] == "plan"
        assert request.body["response_format"]["json_schema"]["schema"] == PLAN_TOOL.input_schema
        assert "Answer with only the JSON object for plan" in request.body["messages"][0]["content"]
    assert first.input == second.input == json.loads(schema.answer)
    assert "response_format" in first.fallback_reason and first.fallback_reason == second.fallback_reason
    assert first.usage == usage_of(schema.usage)
    [warning] = [r for r in caplog.records if r.name == "agentmesh.llm.openai"]  # learnt once, logged once
    assert "refuses tools" in warning.getMessage()


async def test_a_server_refusing_tools_and_json_schema_gives_an_invalid_response_without_asking_again(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.set_default(Behaviour(refuse_tools=True, refuse_response_format=True))

    for _ in range(2):
        with pytest.raises(InvalidResponse, match="refuses both tools and a JSON-schema response_format"):
            await provider.call_tool(PROMPT, PLAN_TOOL)

    assert [r.status for r in fake.requests] == [400, 400]
    assert [("tools" in r.body, "response_format" in r.body) for r in fake.requests] == [(True, False), (False, True)]


async def test_a_400_about_something_else_is_not_taken_for_a_missing_feature(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour(status=400, error_message="This model's maximum context length is 8192 tokens"))

    with pytest.raises(BadRequest, match="maximum context length"):
        await provider.call_tool(PROMPT, PLAN_TOOL)
    assert len(fake.requests) == 1


# -- errors and retries --


@pytest.mark.parametrize(
    ("behaviour", "at_least_s"),
    [(Behaviour(status=429, retry_after=1), 0.9), (Behaviour(status=429, retry_after_ms=600), 0.55)],
)
async def test_429_is_retried_after_the_retry_after_it_carries(
    provider: LLMProvider, fake: FakeOpenAI, behaviour: Behaviour, at_least_s: float
) -> None:
    fake.script(behaviour)

    started = time.monotonic()
    completion = await provider.complete(PROMPT)

    assert time.monotonic() - started >= at_least_s  # the backoff alone would be ≤ 0.05 s
    assert [r.status for r in fake.requests] == [429, 200]
    assert completion.text.startswith("fake answer:")


@pytest.mark.parametrize(("status", "expected"), [(429, RateLimited), (500, Unavailable), (503, Unavailable)])
async def test_retries_exhausted_raise_the_mapped_error(
    provider: LLMProvider, fake: FakeOpenAI, status: int, expected: type[ProviderError]
) -> None:
    fake.script(Behaviour(status=status, retry_after=0), times=3)

    with pytest.raises(expected) as caught:
        await provider.complete(PROMPT)

    assert caught.value.retryable
    assert caught.value.details["status"] == status
    assert caught.value.details["upstream_request_id"] == "req_fake"
    assert len(fake.requests) == FAST_RETRY.max_attempts


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(provider: LLMProvider, fake: FakeOpenAI, status: int) -> None:
    fake.script(Behaviour(status=status, error_message="max_tokens is too large"))

    with pytest.raises(BadRequest, match="max_tokens is too large") as caught:
        await provider.complete(PROMPT)

    assert not caught.value.retryable
    assert len(fake.requests) == 1


async def test_a_wrong_key_is_an_authentication_failure_that_never_shows_the_key(fake: FakeOpenAI) -> None:
    wrong_key = "sk-proj-wrong-key-abcdef123"
    provider = OpenAIProvider(api_key=wrong_key, base_url=f"{fake.base_url}/v1")
    try:
        with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY") as caught:
            await RetryingProvider(provider, FAST_RETRY).complete(PROMPT)
    finally:
        await provider.aclose()

    assert [r.status for r in fake.requests] == [401]
    assert wrong_key not in "".join(traceback.format_exception(caught.value))


async def test_an_upstream_message_quoting_a_key_is_redacted(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(status=403, error_message=f"key {API_KEY} may not use {MODEL}; nor sk-other-key-1234567"))

    with pytest.raises(AuthenticationFailed) as caught:
        await provider.complete(PROMPT)

    text = "".join(traceback.format_exception(caught.value))
    assert API_KEY not in text and "sk-other-key-1234567" not in text
    assert "[redacted]" in str(caught.value)


async def test_the_sdk_does_not_retry_on_its_own(raw: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(status=429), Behaviour(status=500))

    with pytest.raises(RateLimited):
        await raw.complete(PROMPT)
    assert len(fake.requests) == 1


async def test_connection_refused_is_unavailable_naming_the_base_url_setting(closed_port: int) -> None:
    provider = OpenAIProvider(api_key=API_KEY, base_url=f"http://127.0.0.1:{closed_port}/v1")
    try:
        with pytest.raises(Unavailable, match=r"ConnectionRefusedError.*OPENAI_BASE_URL") as caught:
            await provider.complete(PROMPT)
    finally:
        await provider.aclose()
    assert caught.value.retryable


async def test_a_timeout_is_unavailable_and_the_upstream_request_is_abandoned(fake: FakeOpenAI) -> None:
    provider = OpenAIProvider(api_key=API_KEY, base_url=f"{fake.base_url}/v1", timeout_s=1.0)
    fake.script(Behaviour(latency_s=30))
    try:
        with pytest.raises(Unavailable, match="in time"):
            await provider.complete(PROMPT)
    finally:
        await provider.aclose()
    await fake.async_wait_until(lambda f: f.in_flight == 0)
    assert fake.requests[0].disconnected


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("server_error", Unavailable), ("rate_limit_exceeded", RateLimited), ("invalid_request_error", BadRequest)],
)
async def test_an_error_event_mid_stream_is_mapped_and_the_answer_not_replayed(
    provider: LLMProvider, fake: FakeOpenAI, error_type: str, expected: type[ProviderError]
) -> None:
    fake.script(Behaviour(text="one two three", stream_error_type=error_type, stream_error_after=1))
    received: list[StreamItem] = []

    with pytest.raises(expected, match=f"fake {error_type}"):
        async for item in provider.stream(PROMPT):
            received.append(item)

    assert received == [TextDelta("one ")]
    assert len(fake.requests) == 1


async def test_a_stream_cut_after_deltas_is_unavailable_and_not_replayed(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    fake.script(Behaviour(text="one two three", stream_drop_after=1))
    received: list[StreamItem] = []

    with pytest.raises(Unavailable):
        async for item in provider.stream(PROMPT):
            received.append(item)

    assert received == [TextDelta("one ")]
    assert len(fake.requests) == 1


async def test_a_stream_failing_before_its_first_delta_is_retried(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(status=503), Behaviour(stream_error_type="server_error", stream_error_after=0))

    items = await collect(provider.stream(PROMPT))

    assert items[-1] == StreamDone(usage_of(fake.requests[-1].usage), stop_reason="stop")
    assert [r.status for r in fake.requests] == [503, 200, 200]


async def test_cancelling_a_stream_closes_the_upstream_request(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(text="first then a long pause", delta_delay_s=30))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(PROMPT):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await fake.async_wait_until(lambda f: f.in_flight == 0)
    assert fake.requests[0].disconnected


async def test_the_request_id_travels_upstream_when_set(provider: LLMProvider, fake: FakeOpenAI) -> None:
    await provider.complete(PROMPT)
    token = request_id_var.set("req-abc.123")
    try:
        await provider.complete(PROMPT)
        await collect(provider.stream(PROMPT))
        await provider.call_tool(PROMPT, PLAN_TOOL)
    finally:
        request_id_var.reset(token)

    without, *with_id = fake.requests
    assert "x-request-id" not in without.headers
    assert [r.headers["x-request-id"] for r in with_id] == ["req-abc.123"] * 3


async def test_a_server_without_keys_needs_only_its_base_url(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake.api_key = None  # like Ollama or vLLM without --api-key
    provider = OpenAIProvider(base_url=f"{fake.base_url}/v1")
    try:
        assert (await provider.complete(PROMPT)).text.startswith("fake answer:")
    finally:
        await provider.aclose()


# -- the fake itself: what the official SDK parses --


async def test_the_fake_streams_tool_call_deltas_the_sdk_reassembles(fake: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{fake.base_url}/v1", max_retries=0)
    tool = {"type": "function", "function": {"name": "plan", "parameters": PLAN_TOOL.input_schema}}
    try:
        async with client.chat.completions.stream(
            model=MODEL,
            messages=[{"role": "user", "content": "a\nb"}],
            tools=[tool],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "plan"}},
            stream_options={"include_usage": True},
        ) as stream:
            final = await stream.get_final_completion()
    finally:
        await client.close()

    (call,) = final.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "plan"
    assert json.loads(call.function.arguments) == fake.requests[0].answer
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.prompt_tokens == fake.requests[0].usage["prompt_tokens"]  # type: ignore[index]


async def test_the_fake_ends_streams_with_one_usage_chunk_then_done(fake: FakeOpenAI) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        with_usage = await client.post(
            "/v1/chat/completions", json={**body, "stream_options": {"include_usage": True}}, headers=headers
        )
        without = await client.post("/v1/chat/completions", json=body, headers=headers)

    events = [line.removeprefix("data: ") for line in with_usage.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {(c["id"], c["created"]) for c in chunks} == {(chunks[0]["id"], chunks[0]["created"])}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == fake.requests[0].usage
    assert all(c["usage"] is None for c in chunks[:-1])
    plain = [json.loads(line[6:]) for line in without.text.splitlines() if line.startswith("data: {")]
    assert all("usage" not in c and c["choices"] for c in plain)


async def test_the_fake_validates_requests_like_the_real_api(fake: FakeOpenAI) -> None:
    good = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        no_key = await client.post("/v1/chat/completions", json=good)
        choice_without_tools = await client.post(
            "/v1/chat/completions", json={**good, "tool_choice": "required"}, headers=headers
        )
        options_without_stream = await client.post(
            "/v1/chat/completions", json={**good, "stream_options": {"include_usage": True}}, headers=headers
        )
        ok = await client.post("/v1/chat/completions", json=good, headers=headers)

    assert (no_key.status_code, no_key.json()["error"]["code"]) == (401, "invalid_api_key")
    assert choice_without_tools.status_code == options_without_stream.status_code == 400
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "fake answer: hi"
    assert fake.requests[-1].usage == ok.json()["usage"]


async def test_the_fake_runs_as_a_process_scripted_over_http() -> None:
    with spawn_fake_openai(api_key=API_KEY) as fake:
        fake.script({"status": 429, "retry_after_ms": 10, "times": 2})
        provider = OpenAIProvider(api_key=API_KEY, base_url=f"{fake.base_url}/v1")
        try:
            completion = await RetryingProvider(provider, FAST_RETRY).complete(PROMPT)
        finally:
            await provider.aclose()
        requests = fake.requests()
        assert fake.wait_for_state(in_flight=0, request_count=3)["scripted"] == 0

    assert [r["status"] for r in requests] == [429, 429, 200]
    assert completion.usage == usage_of(requests[-1]["usage"])
    assert fake.process.returncode is not None


# -- tool loops: one turn at a time --

LOOKUP = Tool(
    name="docs__lookup",
    description="Look a word up.",
    input_schema={"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)


def turn_request(*items: ConversationItem, tool_choice: ToolChoice = "auto") -> TurnRequest:
    return TurnRequest(
        model=MODEL,
        system="Use the tools.",
        items=[UserText("Define pg and sqlite"), *items],
        max_tokens=256,
        tools=[LOOKUP],
        tool_choice=tool_choice,
    )


async def test_a_turn_offers_functions_and_returns_the_tool_calls_the_model_made(
    provider: LLMProvider, fake: FakeOpenAI
) -> None:
    calls = [{"name": "docs__lookup", "input": {"word": "pg"}}, {"name": "docs__lookup", "input": {"word": "sqlite"}}]
    fake.script(Behaviour(tool_calls=calls))

    result = await provider.turn(turn_request())

    [request] = fake.requests
    assert request.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "docs__lookup",
                "description": "Look a word up.",
                "parameters": dict(LOOKUP.input_schema),
            },
        }
    ]
    assert request.body["tool_choice"] == "auto"
    assert request.body["messages"] == [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Define pg and sqlite"},
    ]
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("docs__lookup", {"word": "pg"}),
        ("docs__lookup", {"word": "sqlite"}),
    ]
    assert [c.id for c in result.tool_calls] == [call["id"] for call in request.answer]
    assert result.stop_reason == "tool_calls"
    assert result.usage == usage_of(request.usage)


async def test_tool_results_go_back_as_tool_messages_and_errors_say_so(provider: LLMProvider, fake: FakeOpenAI) -> None:
    asked = AssistantTurn(
        "", [ToolUse("call_1", "docs__lookup", {"word": "pg"}), ToolUse("call_2", "docs__lookup", {"word": "sqlite"})]
    )
    results = ToolResults([ToolResult("call_1", "a database server"), ToolResult("call_2", "no such word", True)])

    result = await provider.turn(turn_request(asked, results))

    [request] = fake.requests
    assert request.body["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "docs__lookup", "arguments": '{"word": "pg"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "docs__lookup", "arguments": '{"word": "sqlite"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a database server"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: no such word"},
    ]
    assert result.tool_calls == []
    assert result.text == "fake answer from tools: a database server | Error: no such word"


async def test_a_turn_with_tool_choice_none_gets_text(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(tool_calls=[{"name": "docs__lookup", "input": {"word": "pg"}}]))

    result = await provider.turn(turn_request(tool_choice="none"))

    [request] = fake.requests
    assert request.body["tool_choice"] == "none" and request.body["tools"]
    assert result.tool_calls == [] and result.text.startswith("fake answer")


async def test_a_turn_is_retried_like_every_call(provider: LLMProvider, fake: FakeOpenAI) -> None:
    fake.script(Behaviour(status=429))

    result = await provider.turn(turn_request())

    assert [r.status for r in fake.requests] == [429, 200]
    assert result.text.startswith("fake answer")
