"""How a run ended, for chat completions and responses alike: one mapping from what ended it to what is said."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from gateway.openai.errors import ApiError, rpc_error, shutting_down
from gateway.orchestrator_client import GatewayShuttingDown
from gateway.spend.control import Grant, SpendControl


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``code`` and ``message`` for its record and log line, ``error`` for the client (None when
    the client is gone and nothing is sent)."""

    code: str
    message: str
    error: ApiError | None


def outcome_of(exc: BaseException, grant: Grant, spend: SpendControl, *, streaming: bool) -> Outcome:
    """What ended a run early, for both paths. Before the first byte, a refused cost cap is read against the
    day's spend (a 429 when the day's remainder set the cap); once streaming, the plain status mapping is sent.
    Anything else is the client going away before the first byte, and a server error once streaming."""
    if isinstance(exc, grpc.aio.AioRpcError):
        error = rpc_error(exc) if streaming else spend.rpc_error(exc, grant)
        return Outcome(exc.code().name, error.message, error)
    if isinstance(exc, GatewayShuttingDown):
        error = shutting_down()
        return Outcome("shutdown", error.message, error)
    if streaming and isinstance(exc, Exception):
        error = ApiError(500, "internal error while streaming", "server_error")
        return Outcome("error", error.message, error)
    return Outcome("cancelled", f"the client closed the {'stream' if streaming else 'request'}", None)
