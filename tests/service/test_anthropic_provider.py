"""AnthropicProvider against a fake Anthropic API speaking the real wire format on a loopback port."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from agentmesh.llm.anthropic import AnthropicProvider
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
from tests.service.conftest import FAKE_API_KEY, FAST_RETRY
from tests.support.fake_anthropic import Behaviour, FakeAnthropic, spawn_fake_anthropic

MODEL = "claude-haiku-4-5-20251001"
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


def usage_of(recorded: dict[str, int | None] | None) -> TokenUsage:
    assert recorded is not None, "the fake recorded no usage: the answer was not completed"
    return TokenUsage(
        model=MODEL,
        input_tokens=recorded["input_tokens"] or 0,
        output_tokens=recorded["output_tokens"] or 0,
        cache_creation_input_tokens=recorded["cache_creation_input_tokens"] or 0,
        cache_read_input_tokens=recorded["cache_read_input_tokens"] or 0,
    )


def usage_of_dict(usage: TokenUsage) -> dict[str, int | None]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }


async def collect(items: AsyncIterator[StreamItem]) -> list[StreamItem]:
    return [item async for item in items]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but never listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# -- the happy paths --


async def test_complete_returns_text_and_the_usage_the_server_reported(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    completion = await anthropic_provider.complete(PROMPT)

    [request] = fake_anthropic.requests
    assert completion.text == "fake answer: pg\nsqlite" == request.answer
    assert completion.usage == usage_of(request.usage)
    assert completion.stop_reason == "end_turn"
    assert request.body["system"] == "You are terse."
    assert request.body["messages"] == [
        {"role": "user", "content": "Compare two databases"},
        {"role": "assistant", "content": "Which?"},
        {"role": "user", "content": "pg\nsqlite"},
    ]
    assert request.body["model"] == MODEL and request.body["max_tokens"] == 256
    assert not {"temperature", "top_p", "stream", "tools"} & set(request.body)


async def test_an_empty_system_prompt_is_not_sent(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    await anthropic_provider.complete(Prompt(model=MODEL, system="", messages=PROMPT.messages, max_tokens=16))

    assert "system" not in fake_anthropic.requests[0].body


async def test_cache_tokens_are_reported_and_null_counts_become_zero(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(cache_creation_input_tokens=7, cache_read_input_tokens=None))

    usage = (await anthropic_provider.complete(PROMPT)).usage

    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (7, 0)
    assert fake_anthropic.requests[0].usage == {**usage_of_dict(usage), "cache_read_input_tokens": None}


async def test_stream_yields_deltas_in_order_then_one_done_with_the_usage(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(text="one two three four", cache_read_input_tokens=3))

    items = await collect(anthropic_provider.stream(PROMPT))

    [request] = fake_anthropic.requests
    assert request.body["stream"] is True
    assert items[:-1] == [TextDelta("one "), TextDelta("two "), TextDelta("three "), TextDelta("four")]
    assert items[-1] == StreamDone(usage_of(request.usage), stop_reason="end_turn")
    assert items[-1].usage.cache_read_input_tokens == 3


async def test_call_tool_forces_the_tool_and_returns_its_input(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    call = await anthropic_provider.call_tool(PROMPT, PLAN_TOOL)

    [request] = fake_anthropic.requests
    assert call.stop_reason == "tool_use"
    assert request.body["tool_choice"] == {"type": "tool", "name": "plan"}
    assert request.body["tools"] == [
        {"name": "plan", "description": PLAN_TOOL.description, "input_schema": dict(PLAN_TOOL.input_schema)}
    ]
    assert call.input == {
        "subtasks": [
            {"id": "t1", "title": "pg", "instruction": "pg", "depends_on": []},
            {"id": "t2", "title": "sqlite", "instruction": "sqlite", "depends_on": []},
        ]
    }
    assert call.usage == usage_of(request.usage)


async def test_call_tool_returns_a_scripted_tool_input(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(tool_input={"subtasks": [], "note": "ünïcode"}))

    assert (await anthropic_provider.call_tool(PROMPT, PLAN_TOOL)).input == {"subtasks": [], "note": "ünïcode"}


async def test_call_tool_without_a_tool_call_is_an_invalid_response(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(refuse_tool=True, text="I will not plan this."))

    with pytest.raises(InvalidResponse, match="'plan'") as caught:
        await anthropic_provider.call_tool(PROMPT, PLAN_TOOL)

    assert not caught.value.retryable
    assert len(fake_anthropic.requests) == 1


# -- request context --


async def test_the_request_id_travels_upstream_when_set(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    await anthropic_provider.complete(PROMPT)
    token = request_id_var.set("req-abc.123")
    try:
        await anthropic_provider.complete(PROMPT)
        await collect(anthropic_provider.stream(PROMPT))
        await anthropic_provider.call_tool(PROMPT, PLAN_TOOL)
    finally:
        request_id_var.reset(token)

    without, *with_id = fake_anthropic.requests
    assert "x-request-id" not in without.headers
    assert [r.headers["x-request-id"] for r in with_id] == ["req-abc.123"] * 3


# -- errors and retries --


async def test_429_is_retried_after_the_retry_after_it_carries(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(status=429, retry_after=1))

    started = time.monotonic()
    completion = await anthropic_provider.complete(PROMPT)

    assert time.monotonic() - started >= 0.9  # the backoff alone would be ≤ 0.05 s
    assert [r.status for r in fake_anthropic.requests] == [429, 200]
    assert completion.text.startswith("fake answer:")


async def test_529_then_success_gives_one_answer_from_two_upstream_requests(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    fake_anthropic.script(Behaviour(status=529))

    with caplog.at_level(logging.WARNING, logger="agentmesh.llm.retry"):
        call = await anthropic_provider.call_tool(PROMPT, PLAN_TOOL)

    assert "subtasks" in call.input
    assert [r.status for r in fake_anthropic.requests] == [529, 200]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert (record.error, record.status, record.attempt) == ("RateLimited", 529, 1)  # type: ignore[attr-defined]
    assert FAKE_API_KEY not in caplog.text


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (429, "rate_limit_error", RateLimited),
        (529, "overloaded_error", RateLimited),
        (500, "api_error", Unavailable),
        (503, "api_error", Unavailable),
    ],
)
async def test_retries_exhausted_raise_the_mapped_error(
    anthropic_provider: LLMProvider,
    fake_anthropic: FakeAnthropic,
    status: int,
    error_type: str,
    expected: type[ProviderError],
) -> None:
    fake_anthropic.script(Behaviour(status=status, error_type=error_type, retry_after=0), times=3)

    with pytest.raises(expected) as caught:
        await anthropic_provider.complete(PROMPT)

    assert caught.value.retryable
    assert caught.value.details["status"] == status
    assert len(fake_anthropic.requests) == FAST_RETRY.max_attempts


@pytest.mark.parametrize(("status", "expected"), [(400, BadRequest), (404, BadRequest), (413, BadRequest)])
async def test_client_errors_are_not_retried(
    anthropic_provider: LLMProvider,
    fake_anthropic: FakeAnthropic,
    status: int,
    expected: type[ProviderError],
) -> None:
    fake_anthropic.script(Behaviour(status=status, error_message="max_tokens: too large"))

    with pytest.raises(expected, match="max_tokens: too large") as caught:
        await anthropic_provider.complete(PROMPT)

    assert not caught.value.retryable
    assert len(fake_anthropic.requests) == 1


async def test_a_wrong_key_is_an_authentication_failure_that_never_shows_the_key(
    fake_anthropic: FakeAnthropic,
) -> None:
    wrong_key = "sk-ant-wrong-key-abcdef"
    provider = RetryingProvider(AnthropicProvider(api_key=wrong_key, base_url=fake_anthropic.base_url), FAST_RETRY)
    try:
        with pytest.raises(AuthenticationFailed, match="ANTHROPIC_API_KEY") as caught:
            await provider.complete(PROMPT)
    finally:
        await provider.aclose()

    assert [r.status for r in fake_anthropic.requests] == [401]
    assert wrong_key not in str(caught.value) and wrong_key not in repr(caught.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upstream_message_quoting_the_key_is_redacted(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic, status: int
) -> None:
    fake_anthropic.script(Behaviour(status=status, error_message=f"key {FAKE_API_KEY} is not allowed here"))

    with pytest.raises(AuthenticationFailed) as caught:
        await anthropic_provider.complete(PROMPT)

    assert FAKE_API_KEY not in "".join(traceback.format_exception(caught.value))
    assert "[redacted]" in str(caught.value)
    assert len(fake_anthropic.requests) == 1


async def test_the_sdk_does_not_retry_on_its_own(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url)  # no retry wrapper
    fake_anthropic.script(Behaviour(status=529), Behaviour(status=500))
    try:
        with pytest.raises(RateLimited):
            await provider.complete(PROMPT)
        with pytest.raises(Unavailable):
            await collect(provider.stream(PROMPT))
    finally:
        await provider.aclose()

    assert [r.headers["x-stainless-retry-count"] for r in fake_anthropic.requests] == ["0", "0"]


async def test_connection_refused_is_unavailable(closed_port: int) -> None:
    provider = RetryingProvider(
        AnthropicProvider(api_key=FAKE_API_KEY, base_url=f"http://127.0.0.1:{closed_port}"), FAST_RETRY
    )
    try:
        with pytest.raises(Unavailable, match=r"ConnectionRefusedError.*ANTHROPIC_BASE_URL") as caught:
            await provider.complete(PROMPT)
    finally:
        await provider.aclose()

    assert caught.value.retryable


async def test_a_timeout_is_unavailable_and_the_upstream_request_is_abandoned(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url, timeout_s=1.0)
    fake_anthropic.script(Behaviour(latency_s=30))
    try:
        with pytest.raises(Unavailable, match="in time"):
            await provider.complete(PROMPT)
    finally:
        await provider.aclose()

    await fake_anthropic.async_wait_until(lambda fake: fake.in_flight == 0)
    assert fake_anthropic.requests[0].disconnected


# -- streaming errors --


async def test_an_error_event_mid_stream_is_mapped_and_the_answer_not_replayed(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(text="a b c d", stream_error_type="overloaded_error", stream_error_after=2))
    received: list[StreamItem] = []

    with pytest.raises(RateLimited) as caught:
        async for item in anthropic_provider.stream(PROMPT):
            received.append(item)

    assert received == [TextDelta("a "), TextDelta("b ")]
    assert caught.value.details["type"] == "overloaded_error"
    assert len(fake_anthropic.requests) == 1


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("invalid_request_error", BadRequest), ("authentication_error", AuthenticationFailed), ("api_error", Unavailable)],
)
async def test_error_events_mid_stream_map_like_statuses(
    anthropic_provider: LLMProvider,
    fake_anthropic: FakeAnthropic,
    error_type: str,
    expected: type[ProviderError],
) -> None:
    fake_anthropic.script(Behaviour(stream_error_type=error_type, stream_error_after=1))

    with pytest.raises(expected):
        await collect(anthropic_provider.stream(PROMPT))

    assert len(fake_anthropic.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(text="a b c d", stream_drop_after=2), "broke mid-stream"),
        (Behaviour(text="a b c d", delta_delay_s=30), "read timeout"),
    ],
)
async def test_a_stream_cut_after_deltas_is_unavailable_and_not_replayed(
    fake_anthropic: FakeAnthropic, behaviour: Behaviour, reason: str
) -> None:
    provider = RetryingProvider(
        AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake_anthropic.base_url, timeout_s=1.0), FAST_RETRY
    )
    fake_anthropic.script(behaviour)
    received: list[StreamItem] = []
    try:
        with pytest.raises(Unavailable, match=reason):
            async for item in provider.stream(PROMPT):
                received.append(item)
    finally:
        await provider.aclose()

    assert received and all(isinstance(item, TextDelta) for item in received)
    assert len(fake_anthropic.requests) == 1


async def test_a_stream_failing_before_its_first_delta_is_retried(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        Behaviour(status=529),
        Behaviour(stream_error_type="overloaded_error", stream_error_after=0),
        Behaviour(text="ok"),
    )

    items = await collect(anthropic_provider.stream(PROMPT))

    assert items[0] == TextDelta("ok")
    assert items[-1] == StreamDone(usage_of(fake_anthropic.requests[-1].usage), stop_reason="end_turn")
    assert len(fake_anthropic.requests) == 3


async def test_stopping_a_stream_early_closes_the_upstream_request(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(text="first then a long pause", delta_delay_s=30))
    stream = anthropic_provider.stream(PROMPT)

    assert await anext(stream) == TextDelta("first ")
    assert fake_anthropic.in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]

    await fake_anthropic.async_wait_until(lambda fake: fake.in_flight == 0)
    assert fake_anthropic.requests[0].disconnected
    assert fake_anthropic.requests[0].usage is None


# -- the fake itself --


async def test_the_fake_validates_requests_like_the_real_api(fake_anthropic: FakeAnthropic) -> None:
    url = f"{fake_anthropic.base_url}/v1/messages"
    good = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": FAKE_API_KEY, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient() as client:
        no_key = await client.post(url, json=good, headers={"anthropic-version": "2023-06-01"})
        no_version = await client.post(url, json=good, headers={"x-api-key": FAKE_API_KEY})
        no_messages = await client.post(url, json={**good, "messages": []}, headers=headers)
        ok = await client.post(url, json=good, headers=headers)

    assert (no_key.status_code, no_key.json()["error"]["type"]) == (401, "authentication_error")
    assert (no_version.status_code, no_messages.status_code) == (400, 400)
    assert ok.status_code == 200
    assert ok.json()["content"] == [{"type": "text", "text": "fake answer: hi"}]
    assert fake_anthropic.requests[-1].usage == ok.json()["usage"]


async def test_the_fake_runs_as_a_process_scripted_over_http() -> None:
    with spawn_fake_anthropic(api_key=FAKE_API_KEY) as fake:
        fake.script({"status": 529, "times": 2})
        provider = RetryingProvider(AnthropicProvider(api_key=FAKE_API_KEY, base_url=fake.base_url), FAST_RETRY)
        try:
            completion = await provider.complete(PROMPT)
        finally:
            await provider.aclose()
        requests = fake.requests()

        assert fake.wait_for_state(in_flight=0, request_count=3)["scripted"] == 0
        with pytest.raises(httpx.HTTPStatusError):
            fake.wait_for_state(within_s=0.1, request_count=4)

    assert [r["status"] for r in requests] == [529, 529, 200]
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


async def test_a_turn_offers_the_tools_and_returns_the_calls_the_model_made(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    calls = [{"name": "docs__lookup", "input": {"word": "pg"}}, {"name": "docs__lookup", "input": {"word": "sqlite"}}]
    fake_anthropic.script(Behaviour(tool_calls=calls))

    result = await anthropic_provider.turn(turn_request())

    [request] = fake_anthropic.requests
    assert request.body["tools"] == [
        {"name": "docs__lookup", "description": "Look a word up.", "input_schema": dict(LOOKUP.input_schema)}
    ]
    assert request.body["tool_choice"] == {"type": "auto"}
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("docs__lookup", {"word": "pg"}),
        ("docs__lookup", {"word": "sqlite"}),
    ]
    assert [c.id for c in result.tool_calls] == [block["id"] for block in request.answer]
    assert result.stop_reason == "tool_use" and result.text == ""
    assert result.usage == usage_of(request.usage)


async def test_tool_results_go_back_as_tool_result_blocks_with_is_error(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    asked = AssistantTurn(
        "Looking both up.",
        [ToolUse("toolu_1", "docs__lookup", {"word": "pg"}), ToolUse("toolu_2", "docs__lookup", {"word": "sqlite"})],
    )
    results = ToolResults([ToolResult("toolu_1", "a database server"), ToolResult("toolu_2", "no such word", True)])

    result = await anthropic_provider.turn(turn_request(asked, results))

    [request] = fake_anthropic.requests
    assert request.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking both up."},
                {"type": "tool_use", "id": "toolu_1", "name": "docs__lookup", "input": {"word": "pg"}},
                {"type": "tool_use", "id": "toolu_2", "name": "docs__lookup", "input": {"word": "sqlite"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a database server", "is_error": False},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such word", "is_error": True},
            ],
        },
    ]
    assert result.tool_calls == []
    assert result.text == "fake answer from tools: a database server | (error) no such word"


async def test_a_turn_without_tool_choice_asks_for_text_and_still_lists_the_tools(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(tool_calls=[{"name": "docs__lookup", "input": {"word": "pg"}}]))

    result = await anthropic_provider.turn(turn_request(tool_choice="none"))

    [request] = fake_anthropic.requests
    assert request.body["tool_choice"] == {"type": "none"} and request.body["tools"]
    assert result.tool_calls == [] and result.text.startswith("fake answer")


async def test_a_turn_is_retried_like_every_call(
    anthropic_provider: LLMProvider, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Behaviour(status=529))

    result = await anthropic_provider.turn(turn_request())

    assert [r.status for r in fake_anthropic.requests] == [529, 200]
    assert result.text.startswith("fake answer")
