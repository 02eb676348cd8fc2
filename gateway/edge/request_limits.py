"""MAX_MESSAGES and MAX_TOTAL_CHARS: bounds on a request that its size in bytes alone does not give."""

from __future__ import annotations

from collections.abc import Sequence

from agentmesh.v1 import common_pb2
from gateway.openai.errors import ApiError
from gateway.openai.protocol import ChatCompletionRequest, ChatMessageIn


def check_request_limits(body: ChatCompletionRequest, *, max_messages: int, max_total_chars: int) -> None:
    """Raises a 400 naming the limit: every agent of the mesh reads the whole conversation, so its size is cost."""
    if len(body.messages) > max_messages:
        raise ApiError(
            400,
            f"too many messages: {len(body.messages)} (this service accepts at most {max_messages})",
            "invalid_request_error",
            param="messages",
            code="too_many_messages",
        )
    total = sum(_chars(message) for message in body.messages)
    if total > max_total_chars:
        raise ApiError(
            400,
            f"the messages have {total} characters in all; this service accepts at most {max_total_chars}",
            "invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        )


def _chars(message: ChatMessageIn) -> int:
    """A file part counts as the bytes its base64 data decodes to (at most): its text's size, roughly."""
    content = message.content
    if isinstance(content, str):
        return len(content) + len(message.name or "")
    parts = content or ()
    files = sum(len(part.file.file_data or "") * 3 // 4 for part in parts if part.file is not None)
    return sum(len(part.text or "") for part in parts) + files + len(message.name or "")


def check_conversation_limits(
    messages: Sequence[common_pb2.ChatMessage], *, max_messages: int, max_total_chars: int
) -> None:
    """The same bounds on a whole conversation (a response's, an earlier one it continues included)."""
    if len(messages) > max_messages:
        raise ApiError(
            400,
            f"too many messages: {len(messages)} (this service accepts at most {max_messages})",
            "invalid_request_error",
            param="input",
            code="too_many_messages",
        )
    total = sum(len(message.content) for message in messages)
    if total > max_total_chars:
        raise ApiError(
            400,
            f"the conversation has {total} characters in all; this service accepts at most {max_total_chars}",
            "invalid_request_error",
            param="input",
            code="context_length_exceeded",
        )
