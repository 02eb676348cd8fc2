"""The Anthropic Messages API behind ``LLMProvider``, with SDK errors mapped to ours in one place."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic import Omit
from anthropic.types import (
    AssistantMessageParam,
    ContentBlockParam,
    MessageDeltaUsage,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUnionParam,
    ToolUseBlockParam,
    Usage,
    UserMessageParam,
)
from anthropic.types import Message as ApiMessage
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from agentmesh.llm.pacing import RESPONSE_HOOKS
from agentmesh.llm.provider import (
    AssistantTurn,
    Completion,
    ConversationItem,
    InvalidResponse,
    Message,
    Prompt,
    ProviderError,
    RateLimited,
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
from agentmesh.telemetry import tracing_installed

# Per read/write (a stream silent for this long is cut); the per-phase deadlines usually cancel a call first.
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0

# Mid-stream errors arrive on a 200 response; their error type tells what status they stand for.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_KEY_LIKE = re.compile(r"sk-ant-[A-Za-z0-9_-]+")


class AnthropicSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None


def create() -> AnthropicProvider:
    settings = load_settings(AnthropicSettings)
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    return AnthropicProvider(api_key=key, base_url=settings.anthropic_base_url)


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """``api_key``/``base_url`` of None let the SDK read ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``."""
        # max_retries=0: the RetryingProvider wrapper is the only retry loop (stacked loops multiply calls).
        # The SDK's aiohttp transport (its `aiohttp` extra): a third of the CPU of its default httpx transport per
        # call, and the model calls are most of what a worker does.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=anthropic.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            http_client=anthropic.DefaultAioHttpClient(event_hooks=RESPONSE_HOOKS),
            # The SDK's own call spans join ours when tracing is on. Off, they would be built and dropped: ~7 % of
            # the calls a request makes in the SDK.
            open_telemetry=None if tracing_installed() else False,
        )
        self._where = origin(self._client.base_url)
        self.quota_scope = quota_scope(self._where, self._client.api_key)

    async def complete(self, prompt: Prompt) -> Completion:
        message = await self._create(prompt)
        text = "".join(block.text for block in message.content if block.type == "text")
        return Completion(text=text, usage=_usage(message.model, message.usage), stop_reason=message.stop_reason)

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        message = await self._create(prompt, tool)
        for block in message.content:
            if block.type == "tool_use" and block.name == tool.name:
                return ToolCall(
                    input=block.input, usage=_usage(message.model, message.usage), stop_reason=message.stop_reason
                )
        raise InvalidResponse(
            f"{message.model} answered without calling the forced tool {tool.name!r} "
            f"(stop_reason={message.stop_reason}); max_tokens may be too small for the tool input",
            details={"stop_reason": message.stop_reason},
        )

    async def turn(self, request: TurnRequest) -> TurnResult:
        tools: list[ToolUnionParam] | Omit = (
            [_tool(tool) for tool in request.tools] if request.tools else anthropic.omit
        )
        # "none" still lists the tools: a conversation with tool_use blocks must define them.
        tool_choice: ToolChoiceParam | Omit = anthropic.omit
        if request.tools:
            tool_choice = {"type": "none"} if request.tool_choice == "none" else {"type": "auto"}
        try:
            message = await self._client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens,
                messages=[_item(item) for item in request.items],
                system=request.system or anthropic.omit,
                tools=tools,
                tool_choice=tool_choice,
                extra_headers=request_headers(),
            )
        except anthropic.APIError as exc:
            raise map_error(exc, self._where, self._client.api_key) from None
        return TurnResult(
            text="".join(block.text for block in message.content if block.type == "text"),
            tool_calls=[
                ToolUse(id=block.id, name=block.name, arguments=block.input if isinstance(block.input, dict) else {})
                for block in message.content
                if block.type == "tool_use"
            ],
            usage=_usage(message.model, message.usage),
            stop_reason=message.stop_reason,
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        # The raw events, not ``messages.stream()``: its helper rebuilds a snapshot of the whole message at every
        # event (about 1 ms of CPU per answer); we need only the text deltas and the usage.
        model, usage, stop_reason = prompt.model, Usage(input_tokens=0, output_tokens=0), None
        try:
            events = await self._client.messages.create(
                model=prompt.model,
                max_tokens=prompt.max_tokens,
                messages=_messages(prompt),
                system=_system(prompt),
                stream=True,
                extra_headers=request_headers(),
            )
            async with events:
                async for event in events:
                    if event.type == "content_block_delta":
                        if event.delta.type == "text_delta" and event.delta.text:
                            yield TextDelta(event.delta.text)
                    elif event.type == "message_start":
                        model, usage = event.message.model, event.message.usage.model_copy()
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason
                        _add_final_counts(usage, event.usage)
        except anthropic.APIError as exc:
            raise map_error(exc, self._where, self._client.api_key) from None
        except httpx2.TransportError as exc:  # reading the stream happens outside the SDK's own error wrapping
            raise map_stream_transport_error(exc, self._where) from exc
        yield StreamDone(_usage(model, usage), stop_reason=stop_reason)

    async def aclose(self) -> None:
        await self._client.close()

    async def _create(self, prompt: Prompt, tool: Tool | None = None) -> ApiMessage:
        tools: list[ToolUnionParam] | Omit = anthropic.omit
        tool_choice: ToolChoiceParam | Omit = anthropic.omit
        if tool is not None:
            tools = [{"name": tool.name, "description": tool.description, "input_schema": dict(tool.input_schema)}]
            tool_choice = {"type": "tool", "name": tool.name}
        try:
            return await self._client.messages.create(
                model=prompt.model,
                max_tokens=prompt.max_tokens,
                messages=_messages(prompt),
                system=_system(prompt),
                tools=tools,
                tool_choice=tool_choice,
                extra_headers=request_headers(),
            )
        except anthropic.APIError as exc:
            raise map_error(exc, self._where, self._client.api_key) from None


def map_error(exc: anthropic.APIError, where: str, api_key: str | None = None) -> ProviderError:
    """Our error for an SDK error: the status (or, mid-stream, the error type) decides the class.

    Raise it ``from None``: the SDK's own message quotes the whole upstream body, summarised (and redacted) here.
    """
    if isinstance(exc, anthropic.APITimeoutError) and refused_connection(exc) is None:
        return Unavailable(f"the Anthropic API at {where} did not answer in time", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        cause = connection_cause(exc, exc.message)
        return Unavailable(
            f"could not reach the Anthropic API at {where} ({cause}): check ANTHROPIC_BASE_URL and the network",
            retryable=True,
        )
    if not isinstance(exc, anthropic.APIStatusError):
        return InvalidResponse(
            f"the Anthropic API answered in an unexpected shape: {redact(exc.message, api_key, _KEY_LIKE)}"
        )
    error_type = exc.type or "error"
    status = exc.status_code if exc.status_code >= 400 else _STATUS_OF_ERROR_TYPE.get(error_type, 500)
    said = f"({status} {error_type}: {redact(exc.api_message or 'no message', api_key, _KEY_LIKE)})"
    details: dict[str, Any] = {"status": status, "type": error_type, "upstream_request_id": exc.request_id}
    retry_after = retry_after_s(exc.response.headers)
    if status != 429 and (status == 529 or error_type == "overloaded_error"):  # a 429 stays a rate limit
        return RateLimited(f"Anthropic API is overloaded {said}", True, retry_after, details)
    return error_for_status(
        status, said, api="Anthropic API", key_variable="ANTHROPIC_API_KEY", retry_after=retry_after, details=details
    )


def map_stream_transport_error(exc: httpx2.TransportError, where: str) -> Unavailable:
    if isinstance(exc, httpx2.TimeoutException):
        return Unavailable(f"the Anthropic API at {where} stopped sending mid-stream (read timeout)", retryable=True)
    return Unavailable(f"the connection to the Anthropic API at {where} broke mid-stream", retryable=True)


def _system(prompt: Prompt) -> str | list[TextBlockParam] | Omit:
    """With a cached prefix, the system prompt as blocks: the shared one ends with a cache breakpoint."""
    if prompt.cache is None:
        return prompt.system or anthropic.omit
    shared, own = prompt.system[: prompt.cache.chars], prompt.system[prompt.cache.chars :].strip()
    blocks: list[TextBlockParam] = [{"type": "text", "text": shared, "cache_control": {"type": "ephemeral"}}]
    if own:
        blocks.append({"type": "text", "text": own})
    return blocks


def _messages(prompt: Prompt) -> list[MessageParam]:
    return [_message(m) for m in prompt.messages]


def _message(message: Message) -> MessageParam:
    if message.role == "user":
        return UserMessageParam(role="user", content=message.content)
    return AssistantMessageParam(role="assistant", content=message.content)


def _tool(tool: Tool) -> ToolParam:
    return {"name": tool.name, "description": tool.description, "input_schema": dict(tool.input_schema)}


def _item(item: ConversationItem) -> MessageParam:
    """A conversation item as a message: tool results travel as ``tool_result`` blocks of a user message."""
    if isinstance(item, ToolResults):
        results: list[ContentBlockParam] = [
            ToolResultBlockParam(
                type="tool_result", tool_use_id=result.call_id, content=result.content, is_error=result.is_error
            )
            for result in item.results
        ]
        return UserMessageParam(role="user", content=results)
    if isinstance(item, AssistantTurn):
        blocks: list[ContentBlockParam] = [TextBlockParam(type="text", text=item.text)] if item.text else []
        blocks += [
            ToolUseBlockParam(type="tool_use", id=call.id, name=call.name, input=dict(call.arguments))
            for call in item.tool_calls
        ]
        return AssistantMessageParam(role="assistant", content=blocks)
    return UserMessageParam(role="user", content=item.text)


def _add_final_counts(usage: Usage, final: MessageDeltaUsage) -> None:
    """A message_delta's counts are cumulative totals; the optional ones are left out when they did not change."""
    usage.output_tokens = final.output_tokens
    if final.input_tokens is not None:
        usage.input_tokens = final.input_tokens
    if final.cache_creation_input_tokens is not None:
        usage.cache_creation_input_tokens = final.cache_creation_input_tokens
    if final.cache_read_input_tokens is not None:
        usage.cache_read_input_tokens = final.cache_read_input_tokens


def _usage(model: str, usage: Usage) -> TokenUsage:
    return TokenUsage(
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )
