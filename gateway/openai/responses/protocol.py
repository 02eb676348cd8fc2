"""The Responses API request the gateway accepts (``POST /v1/responses``): text input only."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.openai.protocol import INT32_MAX, Text

# OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512.
MetadataKey = Annotated[Text, StringConstraints(max_length=64)]
MetadataValue = Annotated[Text, StringConstraints(max_length=512)]


class InputContent(BaseModel):
    """One part of an input message; only text parts (``input_text``, ``output_text``) are supported."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Text
    text: Text | None = None


class InputItem(BaseModel):
    """A message item (``type`` is ``message`` or left out); other item types are rejected by translate."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: Text = "message"
    role: Text | None = None
    content: Text | list[InputContent] | None = None


class ResponseRequest(BaseModel):
    """POST /v1/responses. Sampling parameters are accepted and ignored, as in chat; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: Text
    input: Text | list[InputItem]
    instructions: Text | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=INT32_MAX)
    stream: bool = False
    background: bool = False
    store: bool = True
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=16)
    previous_response_id: Text | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: Text | None = None
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="US dollars the request may cost at most (lowers MAX_COST_PER_REQUEST_USD, never raises it)",
    )
