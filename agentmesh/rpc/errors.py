"""Maps provider and domain errors to gRPC status codes, once, at the server boundary."""

from __future__ import annotations

import grpc

from agentmesh.budget import BudgetExceeded
from agentmesh.llm.provider import (
    AuthenticationFailed,
    BadRequest,
    InvalidResponse,
    ProviderError,
    RateLimited,
    Unavailable,
)


class InvalidInput(Exception):
    """The caller sent a request the service cannot act on; the message says what to fix."""


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and a message a person can act on; never includes secrets or tracebacks."""
    if isinstance(exc, PhaseFailed):
        return exc.code, str(exc)
    if isinstance(exc, BudgetExceeded):
        return grpc.StatusCode.FAILED_PRECONDITION, f"cost cap: {exc}"
    if isinstance(exc, InvalidInput):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
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
