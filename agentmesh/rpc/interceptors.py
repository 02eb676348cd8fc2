"""Server and client interceptors: request-id propagation and the one place errors become statuses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from grpc.aio import ClientCallDetails

from agentmesh.deadline import set_deadline_in
from agentmesh.llm.provider import ProviderError
from agentmesh.request_context import REQUEST_ID_HEADER, current_request_id, request_id_var, sane_request_id
from agentmesh.rpc.errors import status_for

logger = logging.getLogger(__name__)

# gRPC's retry policy must not retry a model's failure on another replica: our provider has retried it already,
# and stacked loops multiply calls. A negative pushback tells the client not to retry (gRPC retry design, A6).
NO_RETRY: tuple[tuple[str, str], ...] = (("grpc-retry-pushback-ms", "-1"),)


def _request_id_from(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return sane_request_id(value)
    return None


def _enter(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Puts the caller's request id and deadline in context for everything the handler calls."""
    request_id_var.set(_request_id_from(context))
    set_deadline_in(context.time_remaining())


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        logger.exception("unhandled error in %s", method)
    else:
        logger.warning("%s failed: %s %s", method, code.name, message)
    await context.abort(code, message, trailing_metadata=NO_RETRY if isinstance(exc, ProviderError) else ())


class InFlight:
    """The application calls a server is running (health and reflection not counted), so a drain knows when to end.

    While ``draining``, new application calls are refused with UNAVAILABLE, which callers' retry policy sends
    to another replica.
    """

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()

    async def admit(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this server is shutting down; try another replica")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Puts the caller's request id and deadline in context and maps exceptions to statuses for every handler,
    counting the calls in flight."""

    def __init__(self) -> None:
        self.in_flight = InFlight()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, self.in_flight),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, self.in_flight),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _wrap_unary(
    inner: Any, method: str, in_flight: InFlight
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        _enter(context)
        await in_flight.admit(context)
        with in_flight.track():
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)

    return unary


def _wrap_stream(
    inner: Any, method: str, in_flight: InFlight
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        _enter(context)
        await in_flight.admit(context)
        with in_flight.track():
            try:
                async for item in inner(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)

    return stream


def _with_request_id(details: ClientCallDetails) -> ClientCallDetails:
    request_id = current_request_id()
    if request_id is None:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata[REQUEST_ID_HEADER] = request_id
    return ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class RequestIdUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_request_id(client_call_details), request)


class RequestIdUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(_with_request_id(client_call_details), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [RequestIdUnaryUnary(), RequestIdUnaryStream()]
