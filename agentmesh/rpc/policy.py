"""What a server enforces on every call, whoever the caller: credentials, concurrency, input size, a deadline."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from agentmesh.rpc.options import DEFAULT_MAX_CONNECTION_AGE_S, MAX_MESSAGE_BYTES, server_options
from agentmesh.rpc.tls import PLAINTEXT, TlsFiles

# A character takes at most 4 bytes in UTF-8; the rest is room for the protobuf framing of many small fields.
BYTES_PER_CHAR = 4
FRAMING_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ServerPolicy:
    tls: TlsFiles = PLAINTEXT
    max_concurrent_rpcs: int | None = None
    max_input_chars: int | None = None
    default_deadline_s: float | None = None
    reflection: bool = True
    max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S
    max_connection_age_grace_s: float = 0.0

    @property
    def max_receive_bytes(self) -> int:
        """gRPC refuses a larger message before it is parsed, so a huge one never reaches memory as objects."""
        if self.max_input_chars is None:
            return MAX_MESSAGE_BYTES
        return min(MAX_MESSAGE_BYTES, self.max_input_chars * BYTES_PER_CHAR + FRAMING_BYTES)

    def server_options(self) -> list[tuple[str, int]]:
        """The channel arguments of a server under this policy: connection age, and the receive limit it allows."""
        options = server_options(self.max_connection_age_s, self.max_connection_age_grace_s)
        kept = [option for option in options if option[0] != "grpc.max_receive_message_length"]
        return [*kept, ("grpc.max_receive_message_length", self.max_receive_bytes)]


def text_chars(message: Message) -> int:
    """Characters in every string field of ``message``, nested messages included: what a model would read."""
    total = 0
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            total += sum(len(item) for item in values)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            total += sum(text_chars(item) for item in values)
    return total
