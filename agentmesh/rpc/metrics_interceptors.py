"""RED metrics for every gRPC call a process makes (the server side is measured by the one server interceptor)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from grpc.aio import ClientCallDetails

from agentmesh import metrics

_UNMEASURED = ("/grpc.health", "/grpc.reflection")


def _split(method: str | bytes) -> tuple[str, str]:
    text = method.decode() if isinstance(method, bytes) else method
    service, _, name = text.lstrip("/").rpartition("/")
    return service, name


def _code_name(code: grpc.StatusCode | None) -> str:
    return (code or grpc.StatusCode.OK).name


class _Observation:
    def __init__(self, handled: Any, duration: Any, method: str | bytes) -> None:
        self._handled, self._duration = handled, duration
        self._service, self._method = _split(method)
        self._started = time.monotonic()

    def done(self, code: str) -> None:
        self._handled.labels(self._service, self._method, code).inc()
        self._duration.labels(self._service, self._method).observe(time.monotonic() - self._started)


def _measured(details: ClientCallDetails) -> bool:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return not method.startswith(_UNMEASURED)


class ClientMetricsUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        # Measured when it ends, not awaited here: the caller must see the call's initial metadata as it comes
        # (a worker's "queued for quota" notice, agentmesh.rpc.queued), not only with the response.
        call = await continuation(client_call_details, request)
        _observe_when_done(call, client_call_details)
        return call


class ClientMetricsUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        call = await continuation(client_call_details, request)
        _observe_when_done(call, client_call_details)
        return call


def _observe_when_done(call: Any, details: ClientCallDetails) -> None:
    if not _measured(details):
        return
    observed = _Observation(metrics.grpc_client_handled, metrics.grpc_client_duration, details.method)

    def record(finished: Any) -> None:
        # code() is a coroutine on aio calls; a finished call answers it at once.
        task = asyncio.ensure_future(finished.code())
        task.add_done_callback(lambda t: observed.done(_code_name(t.result()) if not t.cancelled() else "CANCELLED"))

    call.add_done_callback(record)


def client_metrics_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [ClientMetricsUnaryUnary(), ClientMetricsUnaryStream()]
