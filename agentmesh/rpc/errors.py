"""Maps provider and domain errors to gRPC status codes, once, at the server boundary."""

from __future__ import annotations

import grpc

from agentmesh.cost_cap import BudgetExceeded
from agentmesh.errors import InvalidInput, NotFound
from agentmesh.llm.provider import (
    AuthenticationFailed,
    BadRequest,
    InvalidResponse,
    ProviderError,
    RateLimited,
    Unavailable,
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and a message a person can act on; never includes secrets or tracebacks."""
    if isinstance(exc, PhaseFailed):
        return exc.code, str(exc)
    if isinstance(exc, BudgetExceeded):
        return grpc.StatusCode.FAILED_PRECONDITION, f"cost cap: {exc}"
    if isinstance(exc, InvalidInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, RateLimited):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"model rate limited: {exc}"
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, f"model unavailable: {exc}"
    if isinstance(exc, AuthenticationFailed):
        return grpc.StatusCode.UNAUTHENTICATED, f"model API rejected the credentials: {exc}"
    if isinstance(exc, BadRequest):
        return grpc.StatusCode.INVALID_ARGUMENT, f"model API rejected the request: {exc}"
    if isinstance(exc, InvalidResponse):
        return grpc.StatusCode.INTERNAL, f"model answered in an unexpected shape: {exc}"
    if isinstance(exc, ProviderError):
        return grpc.StatusCode.INTERNAL, f"model call failed: {exc}"
    return grpc.StatusCode.INTERNAL, "internal error (see the service log for this request id)"


class PhaseFailed(Exception):
    """A phase of a run failed with a known status; the message names the phase for the user."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


# Trailing metadata on every status our handlers end a call with: its details were written for people (they name
# the phase and say what to do) and may be passed on. A status without it came from gRPC itself, whose details name
# addresses, byte counts and library internals: those are described in our own words instead.
OWN_STATUS: tuple[str, str] = ("agentmesh-status", "own")

# gRPC's own words for a message over the size limit ("Received message larger than max (N vs. M)", "Sent ..."):
# it says RESOURCE_EXHAUSTED, as a rate limit does, and only its details tell the two apart.
_TOO_LARGE_DETAIL = "message larger than max"

_OUR_WORDS = {
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the deadline passed",
    grpc.StatusCode.CANCELLED: "the call was cancelled",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the service ran out of a resource",
    grpc.StatusCode.UNAUTHENTICATED: "the services could not authenticate each other",
}


def is_own_status(exc: grpc.aio.AioRpcError) -> bool:
    """True when one of our handlers ended the call (see ``OWN_STATUS``)."""
    return any((key, value) == OWN_STATUS for key, value in exc.trailing_metadata() or ())


def message_too_large(exc: grpc.aio.AioRpcError) -> bool:
    """gRPC refused a message over its size limit: not a rate limit, and retrying cannot help."""
    code = exc.code()
    return (
        code == grpc.StatusCode.RESOURCE_EXHAUSTED
        and not is_own_status(exc)
        and _TOO_LARGE_DETAIL in (exc.details() or "")
    )


def public_words(exc: grpc.aio.AioRpcError) -> str:
    """What a failed call may tell the next caller: our handler's message, or our words for gRPC's own status."""
    if is_own_status(exc) and exc.details():
        return str(exc.details())
    if message_too_large(exc):
        return "a message between the services is larger than their size limit"
    return _OUR_WORDS.get(exc.code(), f"the call failed ({exc.code().name})")


def downstream_failure(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    """A failed call to another service as the status and words to pass on: a message over the size limit becomes
    INVALID_ARGUMENT (the request was too big for the mesh), never RESOURCE_EXHAUSTED, which callers retry."""
    code = grpc.StatusCode.INVALID_ARGUMENT if message_too_large(exc) else exc.code()
    return code, public_words(exc)
