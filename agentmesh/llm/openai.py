"""Any OpenAI-compatible Chat Completions server behind ``LLMProvider``: OpenAI itself, vLLM, Ollama, llama.cpp,
LM Studio, Groq, Together, OpenRouter. SDK errors are mapped to ours in one place.

Forcing a tool is not universal among those servers. A server that refuses tools with a 400 naming them gets
the tool's schema as ``response_format`` instead; one that refuses that too gets an ``InvalidResponse`` (the
orchestrator then plans one subtask). Each refusal is remembered per model and logged once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import openai
from openai import Omit
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessage,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from agentmesh.llm.pacing import RESPONSE_HOOKS
from agentmesh.llm.provider import (
    AssistantTurn,
    BadRequest,
    Completion,
    ConversationItem,
    InvalidResponse,
    Prompt,
    ProviderError,
    StreamDone,
    StreamItem,
    TextDelta,
    TokenUsage,
    Tool,
    ToolCall,
    ToolResults,
    ToolUse,
    TurnRequest,
    TurnResult,
    Unavailable,
)
from agentmesh.llm.upstream import (
    connection_cause,
    error_for_status,
    origin,
    quota_scope,
    redact,
    refused_connection,
    request_headers,
    retry_after_s,
)
from agentmesh.settings import SETTINGS_CONFIG, load_settings

logger = logging.getLogger(__name__)

# Per read/write (a stream silent for this long is cut); the per-phase deadlines usually cancel a call first.
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0
OPENAI_HOST = "api.openai.com"
# The SDK insists on a key; servers without auth (Ollama, vLLM by default) ignore this one.
NO_KEY = "unused"
# Mid-stream errors arrive on a 200 response; their type (or code) tells what status they stand for.
_STATUS_OF_ERROR = {
    "rate_limit_exceeded": 429,
    "requests": 429,
    "tokens": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "timeout": 504,
    "invalid_request_error": 400,
}
_KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_-]{8,}")
_NAMES_TOOLS = re.compile(r"tool", re.IGNORECASE)
_NAMES_RESPONSE_FORMAT = re.compile(r"response_format|json_schema|structured output|guided", re.IGNORECASE)


class OpenAISettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None


def create() -> OpenAIProvider:
    settings = load_settings(OpenAISettings)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIProvider(api_key=key, base_url=settings.openai_base_url)


class OpenAIProvider:
    name = "openai"

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """A ``base_url`` without ``api_key`` is a server without auth; both None mean OpenAI with the SDK's
        own ``OPENAI_API_KEY``."""
        # max_retries=0: the RetryingProvider wrapper is the only retry loop (stacked loops multiply calls).
        self._client = openai.AsyncOpenAI(
            api_key=api_key or (NO_KEY if base_url else None),
            base_url=base_url,
            max_retries=0,
            timeout=openai.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            # The SDK's aiohttp transport (see agentmesh.llm.anthropic); its response hook feeds the pacing.
            http_client=openai.DefaultAioHttpClient(event_hooks=RESPONSE_HOOKS),
        )
        self._where = origin(self._client.base_url)
        self.quota_scope = quota_scope(self._where, self._client.api_key)
        self._official = self._client.base_url.host == OPENAI_HOST
        self._without_tools: set[str] = set()  # models whose server refused tools
        self._without_schema: set[str] = set()  # ... and a JSON-schema response format
        self._without_stream_usage: set[str] = set()

    async def complete(self, prompt: Prompt) -> Completion:
        completion = await self._create(prompt)
        return Completion(
            text=_message(completion).content or "",
            usage=_usage(completion.model, completion.usage),
            stop_reason=completion.choices[0].finish_reason,
        )

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        if prompt.model not in self._without_tools:
            try:
                return await self._forced_call(prompt, tool)
            except BadRequest as exc:
                if not _names(exc, _NAMES_TOOLS):
                    raise
                self._refused(self._without_tools, prompt.model, "tools", exc)
        if prompt.model not in self._without_schema:
            try:
                return await self._schema_answer(prompt, tool)
            except BadRequest as exc:
                if not _names(exc, _NAMES_RESPONSE_FORMAT):
                    raise
                self._refused(self._without_schema, prompt.model, "a JSON-schema response_format", exc)
        raise InvalidResponse(
            f"the server at {self._where} refuses both tools and a JSON-schema response_format for {prompt.model}"
        )

    async def turn(self, request: TurnRequest) -> TurnResult:
        prompt = Prompt(model=request.model, system=request.system, messages=(), max_tokens=request.max_tokens)
        completion = await self._create(
            prompt,
            messages=_turn_messages(request),
            tools=[_function(tool) for tool in request.tools] if request.tools else openai.omit,
            tool_choice=request.tool_choice if request.tools else openai.omit,
        )
        message = _message(completion)
        calls = [
            ToolUse(
                id=call.id,
                name=call.function.name,
                arguments=_json_object(
                    call.function.arguments or "{}", f"{completion.model}'s {call.function.name!r} arguments"
                ),
            )
            for call in message.tool_calls or []
            if call.type == "function"
        ]
        return TurnResult(
            text=message.content or "",
            tool_calls=calls,
            usage=_usage(completion.model, completion.usage),
            stop_reason=completion.choices[0].finish_reason,
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        usage: CompletionUsage | None = None
        stop_reason: str | None = None
        model = prompt.model
        try:
            max_tokens, max_completion_tokens = self._max_tokens(prompt)
            chunks = await self._client.chat.completions.create(
                model=prompt.model,
                messages=_messages(prompt),
                max_tokens=max_tokens,
                max_completion_tokens=max_completion_tokens,
                stream=True,
                stream_options={"include_usage": True},
                prompt_cache_key=_cache_key(prompt),
                extra_headers=request_headers(),
            )
            async with chunks:  # leaving early (cancelled, consumer gone) closes the upstream response
                async for chunk in chunks:
                    model, usage = chunk.model or model, chunk.usage or usage
                    if chunk.choices and chunk.choices[0].finish_reason:
                        stop_reason = chunk.choices[0].finish_reason
                    if chunk.choices and (text := chunk.choices[0].delta.content):
                        yield TextDelta(text)
        except openai.APIError as exc:
            raise map_error(exc, self._where, self._client.api_key) from None
        if usage is None:  # the answer has reached the user already: count nothing rather than fail it
            self._no_stream_usage(model)
            usage = CompletionUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
        yield StreamDone(_usage(model, usage), stop_reason=stop_reason)

    async def aclose(self) -> None:
        await self._client.close()

    async def _forced_call(self, prompt: Prompt, tool: Tool) -> ToolCall:
        function = _function(tool)
        choice: ChatCompletionNamedToolChoiceParam = {"type": "function", "function": {"name": tool.name}}
        completion = await self._create(prompt, tools=[function], tool_choice=choice)
        message = _message(completion)
        for call in message.tool_calls or []:
            if call.type == "function" and call.function.name == tool.name:
                arguments = _json_object(call.function.arguments, f"{completion.model}'s {tool.name!r} arguments")
                return ToolCall(
                    input=arguments,
                    usage=_usage(completion.model, completion.usage),
                    stop_reason=completion.choices[0].finish_reason,
                )
        raise InvalidResponse(
            f"{completion.model} answered without calling the forced tool {tool.name!r} "
            f"(finish_reason={completion.choices[0].finish_reason}); max_tokens may be too small for the tool input",
            details={"finish_reason": completion.choices[0].finish_reason},
        )

    async def _schema_answer(self, prompt: Prompt, tool: Tool) -> ToolCall:
        """The tool's input as the whole answer, constrained by its schema (for servers without tools)."""
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": tool.name, "description": tool.description, "schema": dict(tool.input_schema)},
        }
        system = f"{prompt.system}\n\nAnswer with only the JSON object for {tool.name}: {tool.description}".strip()
        completion = await self._create(dataclasses.replace(prompt, system=system), response_format=response_format)
        content = _message(completion).content or ""
        return ToolCall(
            input=_json_object(content, f"{completion.model}'s JSON answer"),
            usage=_usage(completion.model, completion.usage),
            fallback_reason="the model server refused tools; the input came from a JSON-schema response_format",
        )

    def _no_stream_usage(self, model: str) -> None:
        if model not in self._without_stream_usage:
            self._without_stream_usage.add(model)
            logger.warning(
                "model server sent no usage in its stream (it ignores stream_options.include_usage): "
                "streamed calls of %s count 0 tokens (logged once per model)",
                model,
                extra={"model": model},
            )

    def _refused(self, models: set[str], model: str, what: str, exc: BadRequest) -> None:
        models.add(model)
        logger.warning(
            "model server refuses %s for %s; falling back (logged once per model)",
            what,
            model,
            extra={"model": model, "status": exc.details.get("status"), "refused": what},
        )

    def _max_tokens(self, prompt: Prompt) -> tuple[int | Omit, int | Omit]:
        """(max_tokens, max_completion_tokens): OpenAI's newer models take only the second; compatible servers
        all know the first."""
        if self._official:
            return openai.omit, prompt.max_tokens
        return prompt.max_tokens, openai.omit

    async def _create(
        self,
        prompt: Prompt,
        *,
        messages: list[ChatCompletionMessageParam] | None = None,
        tools: list[ChatCompletionToolParam] | Omit = openai.omit,
        tool_choice: ChatCompletionToolChoiceOptionParam | Omit = openai.omit,
        response_format: ResponseFormatJSONSchema | Omit = openai.omit,
    ) -> ChatCompletion:
        max_tokens, max_completion_tokens = self._max_tokens(prompt)
        try:
            return await self._client.chat.completions.create(
                model=prompt.model,
                messages=_messages(prompt) if messages is None else messages,
                max_tokens=max_tokens,
                max_completion_tokens=max_completion_tokens,
                tools=tools,
                tool_choice=tool_choice,
                response_format=response_format,
                prompt_cache_key=_cache_key(prompt),
                extra_headers=request_headers(),
            )
        except openai.APIError as exc:
            raise map_error(exc, self._where, self._client.api_key) from None


def map_error(exc: openai.APIError, where: str, api_key: str | None = None) -> ProviderError:
    """Our error for an SDK error: the status (or, mid-stream, the error's type or code) decides the class.

    Raise it ``from None``: the SDK's own message quotes the whole upstream body, summarised (and redacted) here.
    """
    if isinstance(exc, openai.APITimeoutError) and refused_connection(exc) is None:
        return Unavailable(f"the model server at {where} did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = connection_cause(exc, exc.message)
        return Unavailable(
            f"could not reach the model server at {where} ({cause}): check OPENAI_BASE_URL and the network",
            retryable=True,
        )
    headers: Mapping[str, str] = {}
    upstream_id: str | None = None
    if isinstance(exc, openai.APIStatusError):
        status, headers, upstream_id = exc.status_code, exc.response.headers, exc.request_id
    else:  # an error event in a stream that had started with 200
        status = _STATUS_OF_ERROR.get(exc.code or "", _STATUS_OF_ERROR.get(exc.type or "", 500))
    error_type = exc.type or exc.code or "error"
    said = f"({status} {error_type}: {redact(_upstream_message(exc), api_key, _KEY_LIKE)})"
    details: dict[str, Any] = {"status": status, "type": error_type, "upstream_request_id": upstream_id}
    if exc.param:
        details["param"] = exc.param
    retry_after = retry_after_s(headers)
    return error_for_status(
        status, said, api="model server", key_variable="OPENAI_API_KEY", retry_after=retry_after, details=details
    )


def _cache_key(prompt: Prompt) -> str | Omit:
    """The calls sharing a cached prefix go to one cache (OpenAI caches long prompts on its own)."""
    return prompt.cache.key if prompt.cache is not None else openai.omit


def _messages(prompt: Prompt) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    for message in prompt.messages:
        if message.role == "user":
            messages.append({"role": "user", "content": message.content})
        else:
            messages.append({"role": "assistant", "content": message.content})
    return messages


def _function(tool: Tool) -> ChatCompletionToolParam:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": dict(tool.input_schema)},
    }


def _turn_messages(request: TurnRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for item in request.items:
        messages.extend(_turn_message(item))
    return messages


def _turn_message(item: ConversationItem) -> list[ChatCompletionMessageParam]:
    """One item as messages: each tool result is a ``tool`` message of its own (the API has no error flag, so a
    failed call's content says so)."""
    if isinstance(item, ToolResults):
        return [
            {
                "role": "tool",
                "tool_call_id": result.call_id,
                "content": f"Error: {result.content}" if result.is_error else result.content,
            }
            for result in item.results
        ]
    if isinstance(item, AssistantTurn):
        message: ChatCompletionAssistantMessageParam = {"role": "assistant", "content": item.text or None}
        if item.tool_calls:
            message["tool_calls"] = [_call_param(call) for call in item.tool_calls]
        return [message]
    return [{"role": "user", "content": item.text}]


def _call_param(call: ToolUse) -> ChatCompletionMessageToolCallParam:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
    }


def _upstream_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message or "no message"


def _names(exc: BadRequest, pattern: re.Pattern[str]) -> bool:
    """Whether a 400 is about this feature: its param or its message names it."""
    return exc.details.get("status") == 400 and bool(
        pattern.search(str(exc.details.get("param") or "")) or pattern.search(exc.message)
    )


def _message(completion: ChatCompletion) -> ChatCompletionMessage:
    if not completion.choices:
        raise InvalidResponse(f"{completion.model} answered with no choices")
    return completion.choices[0].message


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidResponse(f"{what} are not JSON: {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what} are not a JSON object: {text[:200]!r}")
    return value


def _usage(model: str, usage: CompletionUsage | None) -> TokenUsage:
    """OpenAI's ``prompt_tokens`` include the cached ones; ours count them apart, as Anthropic's do."""
    if usage is None:
        raise InvalidResponse(f"{model} answered without usage")
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens if details else None) or 0
    return TokenUsage(
        model=model,
        input_tokens=max(0, usage.prompt_tokens - cached),
        output_tokens=usage.completion_tokens,
        cache_read_input_tokens=cached,
    )
