"""The OpenAI request and response shapes the gateway accepts and returns."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

INT32_MAX = 2**31 - 1


def _encodable(value: str) -> str:
    # JSON may escape a lone surrogate ("\ud800"); Python decodes it, but no UTF-8 encoder (protobuf's) takes it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired Unicode surrogate") from None
    return value


# Every string a request carries: valid Unicode, so it can travel on to the agents and back.
Text = Annotated[str, AfterValidator(_encodable)]


class InvalidRequest(Exception):
    """The request cannot be served as sent; ``param`` names the offending field (OpenAI style)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class FileIn(BaseModel):
    """A ``file`` content part's file: its name and its content as a data URL (``file_id`` is refused)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    filename: Text | None = None
    file_data: Text | None = None
    file_id: Text | None = None


class ContentPart(BaseModel):
    """One part of a message's content: ``text``, or a ``file`` (a document; checked by translate)."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Text
    text: Text | None = None
    file: FileIn | None = None


class ChatMessageIn(BaseModel):
    # Fields such as tool_calls are ignored here; tool roles themselves are rejected by translate.
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Text
    content: Text | list[ContentPart] | None = None
    name: Text | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions.

    Sampling parameters (temperature, top_p, penalties, seed, stop, logit_bias, ...) are accepted so
    existing clients work unchanged, and ignored: the current anthropic SDK gives the agents no sampling
    parameters. Unknown fields are ignored too, as OpenAI-compatible servers commonly do.
    Types are strict, as OpenAI's are: ``"stream": "yes"`` or ``"max_tokens": "5"`` is a 422, not a guess.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    model: Text
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    max_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: Text | list[Text] | None = None
    user: Text | None = None
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="US dollars the request may cost at most (lowers MAX_COST_PER_REQUEST_USD, never raises it)",
    )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class AgentUsage(BaseModel):
    agent: str
    specialist: str | None = Field(default=None, description="the worker specialist; absent for other agents")
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float | None = Field(description="null when the model has no price")
    calls: int
    max_tokens: int | None = Field(
        default=None, description="the max_tokens its calls were given (the largest); absent when not known"
    )
    max_tokens_lowered_from: int | None = Field(
        default=None,
        description="the configured max_tokens it was lowered from to fit the cost cap; absent when not lowered",
    )

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """Rows stay as they were before specialists and fitted caps existed when those do not apply."""
        data: dict[str, object] = handler(self)
        for name in ("specialist", "max_tokens", "max_tokens_lowered_from"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class UnfinishedSubtask(BaseModel):
    id: str
    outcome: str = Field(description="failed, skipped, timed_out or over_budget")
    reason: str


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(description="US dollars; null when not every agent's model is priced")
    max_cost_usd: float | None = Field(default=None, description="the cost cap the run was held to; null: none")
    agents: list[AgentUsage]
    failed_subtasks: list[UnfinishedSubtask] = Field(
        default_factory=list, description="subtasks the answer was written without, and why"
    )


class AssistantMessage(BaseModel):
    role: str = "assistant"
    content: str
    refusal: None = Field(default=None, description="always null: required by OpenAI's schema, never refused here")
    reasoning_content: str | None = Field(default=None, description="the run's progress (STREAM_PROGRESS=reasoning)")


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = Field(default=None, description="always null: required by OpenAI's schema, not computed")
    finish_reason: str


class ChatCompletion(BaseModel):
    """The non-streaming answer (also documents the usage object that streams carry)."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
