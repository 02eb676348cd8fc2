"""The provider interface every agent talks to, and the errors a provider may raise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One conversation turn sent to a model (system text travels in ``Prompt.system``)."""

    role: Role
    content: str


@dataclass(frozen=True)
class CachedPrefix:
    """The first ``chars`` characters of ``Prompt.system`` are the same, byte for byte, in every call sharing ``key``.

    A provider whose API caches prompts marks it (Anthropic: a ``cache_control`` breakpoint after it; OpenAI:
    ``prompt_cache_key=key``, so those calls land on one cache); others ignore it.
    """

    chars: int
    key: str


@dataclass(frozen=True)
class Prompt:
    """A model call's input: which model, what to say, and how much it may answer."""

    model: str
    system: str
    messages: Sequence[Message]
    max_tokens: int
    cache: CachedPrefix | None = None


@dataclass(frozen=True)
class TokenUsage:
    """Tokens of one call as the API reports them; ``input_tokens`` excludes cache tokens.

    ``cost_usd`` is filled in by the metering wrapper from the pricing table; None means unpriced.
    """

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True)
class Completion:
    """``stop_reason`` (in every result type) is why the model stopped, in its API's words; None when unknown."""

    text: str
    usage: TokenUsage
    stop_reason: str | None = None


@dataclass(frozen=True)
class Tool:
    """A tool the model is forced to call; ``input_schema`` is a JSON schema object."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """The arguments the model gave the forced tool, unvalidated.

    ``fallback_reason`` is set when the API could not force the tool and the provider got the input another way
    (e.g. a JSON-schema response format): the caller shows it, since such input is less reliable.
    """

    input: Mapping[str, Any]
    usage: TokenUsage
    fallback_reason: str = ""
    stop_reason: str | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class StreamDone:
    """Last item of every stream: what the whole call used."""

    usage: TokenUsage
    stop_reason: str | None = None


StreamItem = TextDelta | StreamDone


@dataclass(frozen=True)
class ToolUse:
    """A tool call the model asked for in a turn: ``id`` pairs it with its ``ToolResult``; arguments unvalidated."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned for the call ``call_id``; ``is_error`` tells the model the call failed."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class UserText:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    """What the model said in an earlier turn: its text and the tool calls it made."""

    text: str
    tool_calls: Sequence[ToolUse] = ()


@dataclass(frozen=True)
class ToolResults:
    """The results of one assistant turn's tool calls, in any order (ids pair them)."""

    results: Sequence[ToolResult]


ConversationItem = UserText | AssistantTurn | ToolResults

ToolChoice = Literal["auto", "none"]


@dataclass(frozen=True)
class TurnRequest:
    """One model turn of a conversation that may use tools: ``tools`` are offered (``tool_choice`` "auto": the
    model may call them; "none": it must answer in text, the tools still listed so earlier calls make sense)."""

    model: str
    system: str
    items: Sequence[ConversationItem]
    max_tokens: int
    tools: Sequence[Tool] = ()
    tool_choice: ToolChoice = "auto"


@dataclass(frozen=True)
class TurnResult:
    """The model's turn: its text and the tool calls it wants run (none means this is its answer)."""

    text: str
    tool_calls: Sequence[ToolUse]
    usage: TokenUsage
    stop_reason: str | None = None


Request = Prompt | TurnRequest
"""What a unary call is given: every kind names its ``model`` and ``max_tokens`` (what wrappers read)."""

Reply = Completion | ToolCall | TurnResult
"""What a unary call returns: every kind carries its ``usage`` and ``stop_reason`` (a new kind joins here)."""


class LLMProvider(Protocol):
    """What an agent needs from a model; every call reports its token usage."""

    name: str

    async def complete(self, prompt: Prompt) -> Completion: ...

    def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        """Yields text deltas as the model produces them, then exactly one ``StreamDone``."""
        ...

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        """Forces the model to call ``tool`` once and returns the arguments it chose."""
        ...

    async def turn(self, request: TurnRequest) -> TurnResult:
        """One turn of a conversation with tools: the model answers, or asks for tool calls."""
        ...

    async def aclose(self) -> None: ...


async def aclose_stream(items: AsyncIterator[StreamItem]) -> None:
    """Closes a provider's stream early (async generators hold the upstream response until closed)."""
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass
class ProviderError(Exception):
    """A model call failed; ``retryable`` says whether the same call may succeed later."""

    message: str
    retryable: bool = False
    retry_after_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class RateLimited(ProviderError):
    """The model API refused the call for rate or overload reasons (429, 529)."""


class Unavailable(ProviderError):
    """The model API could not be reached or failed on its side (5xx, connection errors)."""


class BadRequest(ProviderError):
    """The model API rejected the call itself (4xx other than 429): retrying will not help."""


class AuthenticationFailed(ProviderError):
    """The model API rejected our credentials (401/403): an operator must fix the key."""


class InvalidResponse(ProviderError):
    """The model answered, but not in the shape we asked for (e.g. no tool call)."""
