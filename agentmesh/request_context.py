"""The current request's id, carried in a ContextVar so logs and outbound calls can stamp it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("agentmesh_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(candidate: str | None) -> str | None:
    """Returns the candidate if it is safe to echo and log (≤128 chars of [A-Za-z0-9._-])."""
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return None
