"""A fake OpenAI-compatible Chat Completions server on a loopback port: the real wire format, scriptable.

In-process::

    with FakeOpenAI(api_key="test-key") as fake:          # serves on 127.0.0.1:<free port> in a thread
        fake.script(Behaviour(status=429, retry_after_ms=200), Behaviour(text="hello"))
        ... OpenAIProvider(api_key="test-key", base_url=fake.base_url + "/v1") ...

As a process (end-to-end tests point ``OPENAI_BASE_URL`` at ``<base_url>/v1``)::

    python -m tests.support.fake_openai --port 0          # prints "PORT=<n>" when ready; stops on SIGTERM

scripted over HTTP as ``tests.support.fake_api`` describes; ``spawn_fake_openai()`` runs the process.

What it speaks, as api.openai.com does: ``POST /v1/chat/completions`` with a Bearer key; a forced function
(``tool_choice: {"type": "function", "function": {"name": ...}}``) answered by ``message.tool_calls`` (streamed:
tool-call deltas carrying the arguments in pieces); ``response_format: {"type": "json_schema", ...}`` answered
by JSON content; streams of ``chat.completion.chunk`` server-sent events ending in ``data: [DONE]``, with one
usage chunk (``choices: []``) before it when ``stream_options.include_usage`` is set; ``usage`` with
``prompt_tokens_details.cached_tokens`` (included in ``prompt_tokens``); errors as
``{"error": {"message", "type", "param", "code"}}`` with ``retry-after`` / ``retry-after-ms`` headers, and
mid-stream as one ``data: {"error": ...}`` event. Default answers are those of the Anthropic fake: a plan of one
subtask per line, or ``"fake answer: "`` + the first 80 characters of the last user message. Usage: prompt =
chars of all messages // 4 + 1 + cached tokens, completion = chars of the answer // 4 + 1.
"""

from __future__ import annotations

import asyncio
import json
import time
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
from tests.support.fake_cache import CacheUse, openai_use
from tests.support.fake_rate_limit import RateLimit, openai_headers

__all__ = ["ANSWER_PREFIX", "Behaviour", "FakeOpenAI", "FakeOpenAIProcess", "agent_of", "spawn_fake_openai"]

FakeOpenAIProcess = FakeAPIProcess
# (type, code) of OpenAI's error bodies by status.
_ERRORS: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
ROLES = ("system", "developer", "user", "assistant", "tool")
FINGERPRINT = "fp_fake"


@dataclass
class _Answer:
    model: str
    created: int
    text: str | None = None
    tool_name: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    finish_reason: str = "stop"
    calls: list[dict[str, Any]] = field(default_factory=list)  # tool_calls of a tool loop's turn


class FakeOpenAI(FakeAPI):
    name = "OpenAI"
    api_path = "/v1/chat/completions"
    id_prefix = "chatcmpl-fake"
    error_type_of_status = {status: error_type for status, (error_type, _) in _ERRORS.items()}

    def invalid(self, record: RecordedRequest) -> tuple[int, str, str] | None:
        key = bearer(record.headers.get("authorization", ""))
        if not key or (self.api_key is not None and key != self.api_key):
            return 401, "invalid_request_error", "Incorrect API key provided."
        body = record.body
        if not isinstance(body, dict):
            return 400, "invalid_request_error", "We could not parse the JSON body of your request."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return 400, "invalid_request_error", "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "invalid_request_error", "'messages' must be a non-empty array"
        if any(not isinstance(m, dict) or m.get("role") not in ROLES for m in messages):
            return 400, "invalid_request_error", f"each message needs a role of {', '.join(ROLES)}"
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                return 400, "invalid_request_error", f"'{name}' must be an integer >= 1"
        if body.get("stream_options") is not None and not body.get("stream"):
            return 400, "invalid_request_error", "The 'stream_options' parameter is only allowed when 'stream' is on."
        return _invalid_tools(body) or _invalid_response_format(body) or _unanswered_tool_calls(body)

    async def send_error(
        self, send: Send, status: int, error_type: str, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        await send_json(send, status, _error_body(status, error_type, message), {**_HEADERS, **(extra or {})})

    def arrived(self, record: RecordedRequest, behaviour: Behaviour) -> None:
        prompt_tokens = _prompt_chars(record.body) // 4 + 1
        record.cache = openai_use(record.body, self.prompt_cache, prompt_tokens)

    def rate_limit_headers(self, limit: RateLimit) -> dict[str, str]:
        return openai_headers(limit)

    async def answer(self, record: RecordedRequest, behaviour: Behaviour, answer_id: str, send: Send) -> None:
        body = record.body
        if refused := _refused(body, behaviour):
            param, message = refused
            record.status = 400
            await send_json(send, 400, _error_body(400, "invalid_request_error", message, param), _HEADERS)
            return
        answer = _answer(body, behaviour, record.cache)
        record.answer = answer.tool_input if answer.tool_name else (answer.calls or answer.text)
        self.prompt_cache.begin(record.cache)  # the response begins now: this prompt is cached
        if not body.get("stream"):
            self.record_usage(record, answer.usage)
            await send_json(send, 200, _completion_json(answer, answer_id), _HEADERS)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not behaviour.no_stream_usage
        chunks = _stream_chunks(answer, behaviour, answer_id, include_usage)
        await _send_stream(send, chunks, behaviour, lambda: self.record_usage(record, answer.usage))


_HEADERS = {"x-request-id": "req_fake"}


def _error_body(status: int, error_type: str, message: str, param: str | None = None) -> dict[str, Any]:
    code = _ERRORS.get(status, (error_type, None))[1]
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _invalid_tools(body: Mapping[str, Any]) -> tuple[int, str, str] | None:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return 400, "invalid_request_error", "'tools' must be a non-empty array"
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
                return 400, "invalid_request_error", "each tool needs type 'function' and function.name"
    if choice is None:
        return None
    if not tools:
        return 400, "invalid_request_error", "'tool_choice' is only allowed when 'tools' are specified"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or name not in {t["function"]["name"] for t in tools}:
            return 400, "invalid_request_error", f"tool_choice names no function of 'tools': {choice}"
    elif choice not in ("none", "auto", "required"):
        return 400, "invalid_request_error", f"invalid tool_choice {choice!r}"
    return None


def _invalid_response_format(body: Mapping[str, Any]) -> tuple[int, str, str] | None:
    response_format = body.get("response_format")
    if response_format is None or response_format.get("type") in ("text", "json_object"):
        return None
    spec = response_format.get("json_schema")
    if response_format.get("type") != "json_schema" or not isinstance(spec, dict):
        return 400, "invalid_request_error", "response_format must be text, json_object or json_schema"
    if not spec.get("name") or not isinstance(spec.get("schema"), dict):
        return 400, "invalid_request_error", "response_format.json_schema needs a name and a schema"
    return None


def _unanswered_tool_calls(body: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """As the API: an assistant message with tool_calls must be followed by a tool message for each id."""
    messages = body["messages"]
    for index, message in enumerate(messages):
        if message.get("role") == "tool" and not message.get("tool_call_id"):
            return 400, "invalid_request_error", f"messages[{index}]: a 'tool' message needs 'tool_call_id'"
        ids = [c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        if not ids:
            continue
        answered = set()
        for following in messages[index + 1 :]:
            if following.get("role") != "tool":
                break
            answered.add(following.get("tool_call_id"))
        if missing := [str(i) for i in ids if i not in answered]:
            return (
                400,
                "invalid_request_error",
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
            )
    return None


def _offers_tools(body: Mapping[str, Any]) -> bool:
    return bool(body.get("tools")) and body.get("tool_choice", "auto") in ("auto", "required")


def _content_chars(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls") or []
    return len(text_of(message.get("content"))) + sum(len(c["function"]["arguments"]) for c in calls)


def _refused(body: Mapping[str, Any], behaviour: Behaviour) -> tuple[str, str] | None:
    """(param, message) of a server that lacks tools or structured output, worded like such servers."""
    if behaviour.refuse_tools and (body.get("tools") or body.get("tool_choice")):
        return "tools", f"registry.fake/{body['model']} does not support tools"
    if behaviour.refuse_response_format and (body.get("response_format") or {}).get("type") == "json_schema":
        return "response_format", "response_format of type json_schema is not supported by this server"
    return None


def _forced_tool(body: Mapping[str, Any]) -> str | None:
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if isinstance(choice, dict):
        return str(choice["function"]["name"])
    if choice == "required" and tools:
        return str(tools[0]["function"]["name"])
    return None


def _schema_name(body: Mapping[str, Any]) -> str | None:
    response_format = body.get("response_format") or {}
    return str(response_format["json_schema"]["name"]) if response_format.get("type") == "json_schema" else None


def _prompt_chars(body: Mapping[str, Any]) -> int:
    return sum(_content_chars(m) for m in body["messages"])


def _answer(body: Mapping[str, Any], behaviour: Behaviour, cache: CacheUse) -> _Answer:
    asked = last_user_text(body)
    answer = _Answer(model=body["model"], created=int(time.time()))
    tool, schema = _forced_tool(body), _schema_name(body)
    if tool and not behaviour.refuse_tool:
        answer.tool_name, answer.finish_reason = tool, "tool_calls"
        answer.tool_input = (
            behaviour.tool_input if behaviour.tool_input is not None else default_tool_input(tool, asked)
        )
        out_chars = len(json.dumps(answer.tool_input))
    elif schema and not behaviour.refuse_tool:  # scripted text goes out as is, JSON or not
        chosen = behaviour.tool_input if behaviour.tool_input is not None else default_tool_input(schema, asked)
        answer.text = behaviour.text if behaviour.text is not None else json.dumps(chosen)
        out_chars = len(answer.text)
    elif behaviour.tool_calls and _offers_tools(body):
        answer.finish_reason = "tool_calls"
        answer.calls = [
            {
                "id": f"call_fake_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["input"])},
            }
            for c in behaviour.tool_calls
        ]
        out_chars = len(json.dumps(answer.calls))
    else:
        answer.text = default_text(asked, behaviour, tool_results(body))
        out_chars = len(answer.text)
    scripted = behaviour.cache_read_input_tokens
    cached = scripted if scripted != 0 else cache.read
    # Scripted cached tokens come on top of the prompt's own; the fake cache's are part of it.
    prompt, completion = _prompt_chars(body) // 4 + 1 + (scripted or 0), out_chars // 4 + 1
    answer.usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:  # some compatible servers send no details at all
        answer.usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
        answer.usage["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return answer


def _tool_call(answer: _Answer, answer_id: str, arguments: str) -> dict[str, Any]:
    function = {"name": answer.tool_name, "arguments": arguments}
    return {"id": "call_" + answer_id.removeprefix(FakeOpenAI.id_prefix), "type": "function", "function": function}


def _completion_json(answer: _Answer, answer_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    if answer.tool_name:
        message["tool_calls"] = [_tool_call(answer, answer_id, json.dumps(answer.tool_input))]
    elif answer.calls:
        message["tool_calls"] = answer.calls
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
        "usage": answer.usage,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
    }


def _chunk(answer: _Answer, answer_id: str, include_usage: bool, choices: list[dict[str, Any]]) -> dict[str, Any]:
    chunk = {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = None  # OpenAI sends it on every chunk then, null until the last
    return chunk


def _deltas(answer: _Answer, answer_id: str) -> list[dict[str, Any]]:
    """The first delta carries the role (and a tool call's id and name); the rest the content in pieces."""
    if answer.tool_name:
        encoded = json.dumps(answer.tool_input)
        size = max(1, len(encoded) // 4 + 1)
        first = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"index": 0, **_tool_call(answer, answer_id, "")}],
        }
        pieces = [
            {"tool_calls": [{"index": 0, "function": {"arguments": encoded[i : i + size]}}]}
            for i in range(0, len(encoded), size)
        ]
        return [first, *pieces]
    return [{"role": "assistant", "content": ""}, *({"content": word} for word in words(answer.text or ""))]


def _stream_chunks(
    answer: _Answer, behaviour: Behaviour, answer_id: str, include_usage: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, data) of each event: "delta", "error", "finish" or "usage"."""
    for sent, delta in enumerate(_deltas(answer, answer_id)):
        if behaviour.stream_error_type and sent == behaviour.stream_error_after + 1:
            break
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        yield "delta", _chunk(answer, answer_id, include_usage, [choice])
    if error_type := behaviour.stream_error_type:
        yield "error", _error_body(500, error_type, behaviour.error_message or f"fake {error_type}")
        return
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": answer.finish_reason}
    yield "finish", _chunk(answer, answer_id, include_usage, [finish])
    if include_usage:
        yield "usage", {**_chunk(answer, answer_id, include_usage, []), "usage": answer.usage}


async def _send_stream(
    send: Send, chunks: Iterator[tuple[str, dict[str, Any]]], behaviour: Behaviour, record_usage: Callable[[], None]
) -> None:
    await start_response(send, 200, "text/event-stream; charset=utf-8", {**_HEADERS, "cache-control": "no-cache"})
    events = list(chunks)
    delay = behaviour.delta_delay_s + behaviour.stream_hold_s / max(1, sum(kind == "delta" for kind, _ in events))
    deltas_sent = 0
    record_usage()  # the usage is decided; a client reading the usage chunk finds it recorded
    for kind, data in events:
        if deltas_sent > 1 and kind in ("delta", "finish", "error"):
            await asyncio.sleep(delay)  # the role and the first piece go out at once
        if deltas_sent - 1 == behaviour.stream_drop_after:
            raise ConnectionAbortedError("fake OpenAI: dropping the connection mid-stream, as scripted")
        deltas_sent += kind == "delta"
        await send_event(send, json.dumps(data))
    await send_event(send, "[DONE]")
    await send({"type": "http.response.body", "body": b""})


def agent_of(request: Mapping[str, Any]) -> str:
    """Which agent made a recorded request: planning (by tool or JSON schema) is the orchestrator, a stream the
    synthesizer."""
    body = request["body"]
    if _forced_tool(body) == "plan" or _schema_name(body) == "plan":
        return "orchestrator"
    worker = last_user_text(body).startswith("Subtask ")  # a worker's stream warms a run's cached prefix
    return "synthesizer" if body.get("stream") and not worker else "worker"


def spawn_fake_openai(api_key: str | None = None) -> AbstractContextManager[FakeOpenAIProcess]:
    """Runs ``python -m tests.support.fake_openai --port 0`` and always stops it with SIGTERM."""
    return spawn_fake("tests.support.fake_openai", api_key)


if __name__ == "__main__":
    serve_main(FakeOpenAI)
