"""Who is calling: the verified principal a request carries, its client IP, and the key a subject is stored under."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope


@dataclass(frozen=True)
class Principal:
    subject: str
    claims: dict[str, Any]


def principal_of(scope: Scope) -> Principal | None:
    """The principal AuthMiddleware verified for this request, if any (nothing else puts one in scope)."""
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


def client_ip(scope: Scope) -> str:
    """The socket peer; uvicorn replaces it from X-Forwarded-For only when TRUST_PROXY_HEADERS is on."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def subject_key(subject: str) -> str:
    """A subject as the gateway stores it (rate limits, spend, run history): hashed, for a bounded length and no
    user names in a shared Redis."""
    return hashlib.sha256(subject.encode()).hexdigest()[:32]
