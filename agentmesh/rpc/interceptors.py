"""Server and client interceptors: request-id propagation and the one place errors become statuses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import ClientCallDetails

from agentmesh.request_context import REQUEST_ID_HEADER, current_request_id, request_id_var, sane_request_id
from agentmesh.rpc.errors import status_for

logger = logging.getLogger(__name__)


def _request_id_from(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return sane_request_id(value)
    return None


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        logger.exception("unhandled error in %s", method)
    else:
        logger.warning("%s failed: %s %s", method, code.name, message)
    await context.abort(code, message)


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Puts the caller's request id in context and maps exceptions to statuses for every handler."""

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
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _wrap_unary(inner: Any, method: str) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request_id_var.set(_request_id_from(context))
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(exc, context, method)

    return unary


def _wrap_stream(inner: Any, method: str) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        request_id_var.set(_request_id_from(context))
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
