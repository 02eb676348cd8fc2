"""A fake Anthropic Messages API on a loopback port: the real wire format, scriptable, recording every request.

In-process::

    with FakeAnthropic(api_key="test-key") as fake:      # serves on 127.0.0.1:<free port> in a thread
        fake.script(Behaviour(status=529), Behaviour(text="hello"))
        ... AnthropicProvider(api_key="test-key", base_url=fake.base_url) ...
        fake.requests[-1].usage

As a process (end-to-end tests point ``ANTHROPIC_BASE_URL`` at it)::

    python -m tests.support.fake_anthropic --port 0      # prints "PORT=<n>" when ready; stops on SIGTERM

scripted over HTTP as ``tests.support.fake_api`` describes; ``spawn_fake_anthropic()`` runs the process.

Default answers are deterministic: a forced ``plan`` tool gets one subtask per non-empty line of the last user
message (ids t1..tN, no dependencies); plain text gets ``"fake answer: "`` + the first 80 characters of the last
user message. Usage: input = chars of system + messages // 4 + 1, output = chars of the answer // 4 + 1; an answer
longer than the request's ``max_tokens`` is cut there (stop_reason ``max_tokens``, output_tokens = max_tokens), as the
real API does: a text where the tokens ran out, a tool call with the fields (and list items) it finished writing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_api import (
    ANSWER_PREFIX,
    Behaviour,
    FakeAPI,
    FakeAPIProcess,
    RecordedRequest,
    Send,
    bearer,
    default_text,
    default_tool_input,
    last_user_text,
    send_event,
    send_json,
    serve_main,
    spawn_fake,
    start_response,
    text_of,
    tool_results,
    words,
)
from tests.support.fake_cache import CacheUse, anthropic_use
from tests.support.fake_rate_limit import RateLimit, anthropic_headers

__all__ = [
    "ANSWER_PREFIX",
    "Behaviour",
    "FakeAnthropic",
    "FakeAnthropicProcess",
    "RecordedRequest",
    "agent_of",
    "spawn_fake_anthropic",
]

FakeAnthropicProcess = FakeAPIProcess
ERROR_TYPE_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_HEADERS = {"request-id": "req_fake"}


@dataclass
class _Answer:
    model: str
    text: str | None = None
    tool_name: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int | None] = field(default_factory=dict)
    stop_reason: str = "end_turn"
    calls: list[dict[str, Any]] = field(default_factory=list)  # tool_use blocks of a tool loop's turn


class FakeAnthropic(FakeAPI):
    name = "Anthropic"
    api_path = "/v1/messages"
    id_prefix = "msg_fake_"
    error_type_of_status = ERROR_TYPE_OF_STATUS

    def invalid(self, record: RecordedRequest) -> tuple[int, str, str] | None:
        headers, body = record.headers, record.body
        key = headers.get("x-api-key") or bearer(headers.get("authorization", ""))
        if not key:
            return 401, "authentication_error", "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return 401, "authentication_error", "invalid x-api-key"
        if not headers.get("anthropic-version"):
            return 400, "invalid_request_error", "anthropic-version: header is required"
        if not isinstance(body, dict):
            return 400, "invalid_request_error", "request body must be a JSON object"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return 400, "invalid_request_error", "model: Field required"
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return 400, "invalid_request_error", "max_tokens: Field required (an integer >= 1)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "invalid_request_error", "messages: Field required (at least one message)"
        if any(not isinstance(m, dict) or m.get("role") not in ("user", "assistant") for m in messages):
            return 400, "invalid_request_error", "messages: each message needs role 'user' or 'assistant'"
        return _invalid_tool_use(body)

    async def send_error(
        self, send: Send, status: int, error_type: str, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        await send_json(send, status, body, {**_HEADERS, **(extra or {})})

    def arrived(self, record: RecordedRequest, behaviour: Behaviour) -> None:
        record.cache = anthropic_use(record.body, self.prompt_cache)

    def rate_limit_headers(self, limit: RateLimit) -> dict[str, str]:
        return anthropic_headers(limit)

    async def answer(self, record: RecordedRequest, behaviour: Behaviour, answer_id: str, send: Send) -> None:
        answer = _answer(record.body, behaviour, record.cache)
        record.answer = answer.tool_input if answer.tool_name else (answer.calls or answer.text)
        self.prompt_cache.begin(record.cache)  # the response begins now: what it wrote is readable
        if record.body.get("stream"):
            await _send_stream(send, answer, behaviour, answer_id, lambda: self.record_usage(record, answer.usage))
        else:
            self.record_usage(record, answer.usage)
            await send_json(send, 200, _message_json(answer, answer_id), _HEADERS)


def _blocks(message: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def _invalid_tool_use(body: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """The API's rules for tool loops: tools defined whenever tool blocks appear, and every ``tool_use`` answered by
    a ``tool_result`` with its id in the very next (user) message."""
    messages = body["messages"]
    tool_names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    choice = body.get("tool_choice")
    if choice is not None and (
        not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none")
    ):
        return 400, "invalid_request_error", f"tool_choice: invalid value {choice!r}"
    for index, message in enumerate(messages):
        uses = _blocks(message, "tool_use")
        if (uses or _blocks(message, "tool_result")) and not tool_names:
            return (
                400,
                "invalid_request_error",
                "Requests which include `tool_use` or `tool_result` blocks must define tools.",
            )
        if not uses:
            continue
        following = messages[index + 1] if index + 1 < len(messages) else {}
        answered = {b.get("tool_use_id") for b in _blocks(following, "tool_result")}
        if missing := [u["id"] for u in uses if u.get("id") not in answered]:
            return (
                400,
                "invalid_request_error",
                f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                + ", ".join(missing),
            )
    return None


def _offers_tools(body: Mapping[str, Any]) -> bool:
    choice = body.get("tool_choice") or {"type": "auto"}
    return bool(body.get("tools")) and choice.get("type") in ("auto", "any")


def _content_chars(message: Mapping[str, Any]) -> int:
    chars = len(text_of(message.get("content")))
    chars += sum(len(json.dumps(b.get("input"))) for b in _blocks(message, "tool_use"))
    return chars + sum(len(text_of(b.get("content"))) for b in _blocks(message, "tool_result"))


def _forced_tool(body: Mapping[str, Any]) -> str | None:
    choice, tools = body.get("tool_choice") or {}, body.get("tools") or []
    if choice.get("type") == "tool":
        return str(choice["name"])
    if choice.get("type") == "any" and tools:
        return str(tools[0]["name"])
    return None


def _answer(body: Mapping[str, Any], behaviour: Behaviour, cache: CacheUse) -> _Answer:
    asked = last_user_text(body)
    answer = _Answer(model=body["model"])
    if (tool := _forced_tool(body)) and not behaviour.refuse_tool:
        answer.tool_name, answer.stop_reason = tool, "tool_use"
        default_input = default_tool_input(tool, asked)
        answer.tool_input = behaviour.tool_input if behaviour.tool_input is not None else default_input
        out_chars = len(json.dumps(answer.tool_input))
        if out_chars // 4 + 1 > body["max_tokens"]:
            answer.tool_input, answer.stop_reason = (
                _written(answer.tool_input, 4 * body["max_tokens"] - 1),
                "max_tokens",
            )
            out_chars = 4 * body["max_tokens"] - 1
    elif behaviour.tool_calls and _offers_tools(body):
        answer.stop_reason = "tool_use"
        answer.calls = [
            {"type": "tool_use", "id": f"toolu_fake_{uuid.uuid4().hex[:12]}", "name": c["name"], "input": c["input"]}
            for c in behaviour.tool_calls
        ]
        out_chars = len(json.dumps(answer.calls))
    else:
        answer.text = default_text(asked, behaviour, tool_results(body))
        answer.stop_reason = "refusal" if tool else "end_turn"
        if len(answer.text) // 4 + 1 > body["max_tokens"]:
            answer.text, answer.stop_reason = answer.text[: 4 * body["max_tokens"] - 1], "max_tokens"
        out_chars = len(answer.text)
    in_chars = len(text_of(body.get("system", ""))) + sum(_content_chars(m) for m in body["messages"])
    written, read = behaviour.cache_creation_input_tokens, behaviour.cache_read_input_tokens
    scripted = written != 0 or read != 0
    answer.usage = {
        "input_tokens": in_chars // 4 + 1 - (0 if scripted else cache.write + cache.read),
        "output_tokens": out_chars // 4 + 1,
        "cache_creation_input_tokens": written if scripted else cache.write,
        "cache_read_input_tokens": read if scripted else cache.read,
    }
    return answer


def _written(tool_input: dict[str, Any], chars: int) -> dict[str, Any]:
    """What a tool call cut after ``chars`` characters of its JSON holds: the fields, and the items of a list
    field, that were written in full."""
    written: dict[str, Any] = {}
    for key, value in tool_input.items():
        if len(json.dumps({**written, key: value})) <= chars:
            written[key] = value
            continue
        if isinstance(value, list):
            items: list[Any] = []
            while len(items) < len(value) and len(json.dumps({**written, key: [*items, value[len(items)]]})) <= chars:
                items.append(value[len(items)])
            written[key] = items
        break
    return written


def _content_block(answer: _Answer, message_id: str, *, empty: bool = False) -> dict[str, Any]:
    if answer.tool_name:
        tool_input = {} if empty else answer.tool_input
        return {"type": "tool_use", "id": "toolu" + message_id[3:], "name": answer.tool_name, "input": tool_input}
    return {"type": "text", "text": "" if empty else answer.text}


def _message_json(answer: _Answer, message_id: str, *, streaming: bool = False) -> dict[str, Any]:
    usage = {**answer.usage, "output_tokens": 1} if streaming else answer.usage
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [] if streaming else (answer.calls or [_content_block(answer, message_id)]),
        "stop_reason": None if streaming else answer.stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _pieces(answer: _Answer) -> list[dict[str, Any]]:
    if answer.tool_name:
        encoded = json.dumps(answer.tool_input)
        size = max(1, len(encoded) // 4 + 1)
        chunks = [encoded[i : i + size] for i in range(0, len(encoded), size)]
        return [{"type": "input_json_delta", "partial_json": chunk} for chunk in chunks]
    return [{"type": "text_delta", "text": word} for word in words(answer.text or "")]


def _stream_events(answer: _Answer, behaviour: Behaviour, message_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "message_start", {"type": "message_start", "message": _message_json(answer, message_id, streaming=True)}
    block = _content_block(answer, message_id, empty=True)
    yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    yield "ping", {"type": "ping"}
    for sent, delta in enumerate(_pieces(answer)):
        if behaviour.stream_error_type and sent == behaviour.stream_error_after:
            break
        yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
    if error_type := behaviour.stream_error_type:
        message = behaviour.error_message or f"fake {error_type}"
        yield "error", {"type": "error", "error": {"type": error_type, "message": message}}
        return
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    usage = {"output_tokens": answer.usage["output_tokens"]}
    stop = {"stop_reason": answer.stop_reason, "stop_sequence": None}
    delta = {"type": "message_delta", "delta": stop, "usage": usage}
    yield "message_delta", delta
    yield "message_stop", {"type": "message_stop"}


async def _send_stream(
    send: Send, answer: _Answer, behaviour: Behaviour, message_id: str, record_usage: Callable[[], None]
) -> None:
    await start_response(send, 200, "text/event-stream; charset=utf-8", {**_HEADERS, "cache-control": "no-cache"})
    deltas_sent = 0
    delay = behaviour.delta_delay_s + behaviour.stream_hold_s / max(1, len(_pieces(answer)))
    for event, data in _stream_events(answer, behaviour, message_id):
        if event == "message_delta":
            record_usage()
        if deltas_sent and event in ("content_block_delta", "content_block_stop", "error"):
            await asyncio.sleep(delay)  # the first delta goes out at once
        if deltas_sent == behaviour.stream_drop_after:
            raise ConnectionAbortedError("fake Anthropic: dropping the connection mid-stream, as scripted")
        deltas_sent += event == "content_block_delta"
        await send_event(send, json.dumps(data), event)
    await send({"type": "http.response.body", "body": b""})


def agent_of(request: Mapping[str, Any]) -> str:
    """Which agent made a recorded request: the forced plan tool is the orchestrator, a stream the synthesizer
    (unless it is a worker's, whose message starts "Subtask ": the call that warms a run's cached prefix)."""
    body = request["body"]
    if body.get("tool_choice", {}).get("name") == "plan":
        return "orchestrator"
    worker = last_user_text(body).startswith("Subtask ")
    return "synthesizer" if body.get("stream") and not worker else "worker"


def spawn_fake_anthropic(api_key: str | None = None) -> AbstractContextManager[FakeAnthropicProcess]:
    """Runs ``python -m tests.support.fake_anthropic --port 0`` and always stops it with SIGTERM."""
    return spawn_fake("tests.support.fake_anthropic", api_key)


if __name__ == "__main__":
    serve_main(FakeAnthropic)
