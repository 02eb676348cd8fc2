"""The current request's id, carried in a ContextVar so logs and outbound calls can stamp it."""

from __future__ import annotations

import re
import secrets
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_LENGTH}}}")
_SUFFIX_HEX = 12

request_id_var: ContextVar[str | None] = ContextVar("agentmesh_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(candidate: str | None) -> str | None:
    """Returns the candidate if it is safe to echo and log (≤128 chars of [A-Za-z0-9._-], nothing else: a
    ``$`` with ``match`` would let a trailing newline through)."""
    if candidate and _SANE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return None


def unique_request_id(client_id: str) -> str:
    """The internal id of a request whose client chose ``client_id``: theirs, then ``-`` and 12 random hex digits.

    A client may send any id, another request's too; the suffix keeps every request's logs and completion id its
    own, while the prefix still finds it. The result stays within the length the services accept.
    """
    suffix = secrets.token_hex(_SUFFIX_HEX // 2)
    return f"{client_id[: MAX_REQUEST_ID_LENGTH - _SUFFIX_HEX - 1]}-{suffix}"
