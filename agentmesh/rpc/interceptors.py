"""The one server interceptor every application call passes (request id, deadline, drain, metrics, span, errors),
and the client interceptors that carry the request id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from grpc.aio import ClientCallDetails
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from agentmesh import metrics
from agentmesh.deadline import set_deadline_in
from agentmesh.llm.provider import ProviderError
from agentmesh.request_context import REQUEST_ID_HEADER, current_request_id, request_id_var, sane_request_id
from agentmesh.rpc.errors import OWN_STATUS, status_for
from agentmesh.rpc.policy import text_chars

logger = logging.getLogger(__name__)

# Health and reflection are infrastructure: not counted, traced or drained (a balancer's health watch never ends).
UNTRACKED_PREFIXES = ("/grpc.health", "/grpc.reflection")

# gRPC's retry policy must not retry a model's failure on another replica: our provider has retried it already,
# and stacked loops multiply calls. A negative pushback tells the client not to retry (gRPC retry design, A6).
NO_RETRY: tuple[tuple[str, str], ...] = (("grpc-retry-pushback-ms", "-1"),)

Context = grpc.aio.ServicerContext[Any, Any]


def _request_id_from(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return sane_request_id(value)
    return None


def own_trailers(context: Context, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """The trailers of a status we end a call with: those the handler set (an abort's own would replace them),
    the mark that the status is ours, and ``extra``."""
    return (*(context.trailing_metadata() or ()), OWN_STATUS, *extra)


async def _abort_for(exc: Exception, context: Context, method: str) -> None:
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        logger.exception("unhandled error in %s", method)
    else:
        logger.warning("%s failed: %s %s", method, code.name, message)
    await context.abort(
        code, message, trailing_metadata=own_trailers(context, *(NO_RETRY if isinstance(exc, ProviderError) else ()))
    )


class InFlight:
    """The application calls a server is running, so a drain knows when to end.

    While ``draining``, new application calls are refused with UNAVAILABLE, which callers' retry policy sends
    to another replica.
    """

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self.ending = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self.count += 1
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            self._tasks.discard(task)
            if not self.count:
                self._idle.set()

    def end_all(self) -> None:
        """Ends the calls still running (the drain's grace is over): each unwinds and answers UNAVAILABLE."""
        self.ending = True
        for task in self._tasks:
            task.cancel()

    async def idle(self) -> None:
        await self._idle.wait()

    async def admit(self, context: Context) -> None:
        if self.draining:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "this server is shutting down; try another replica", own_trailers(context)
            )


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every application handler once.

    Streaming handlers are served as coroutines that ``context.write`` each item, never as async generators
    handed to grpc: grpc.aio abandons a generator, unclosed, when its call is cancelled between two items, so
    whatever the handler held (downstream calls, model streams, spans) lived on until garbage collection.
    Here a cancelled call unwinds the handler at once, in its own task and context.
    """

    def __init__(
        self,
        tracer: trace.Tracer | None = None,
        max_input_chars: int | None = None,
        default_deadline_s: float | None = None,
    ) -> None:
        self.in_flight = InFlight()
        self._tracer = tracer
        self._bounds = Bounds(max_input_chars, default_deadline_s)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(UNTRACKED_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, inner: Any, method: str) -> Callable[[Any, Context], Awaitable[Any]]:
        async def unary(request: Any, context: Context) -> Any:
            async with self._serving(method, context, request):
                return await inner(request, context)
            return None  # only reached when _serving aborted (it raises); keeps mypy's return check honest

        return unary

    def _stream(self, inner: Any, method: str) -> Callable[[Any, Context], Awaitable[None]]:
        async def stream(request: Any, context: Context) -> None:
            async with (
                self._serving(method, context, request),
                contextlib.aclosing(inner(request, context)) as items,
            ):
                async for item in items:
                    await context.write(item)

        return stream

    @contextlib.asynccontextmanager
    async def _serving(self, method: str, context: Context, request: Any) -> AsyncIterator[None]:
        request_id_var.set(_request_id_from(context))
        limit = self._bounds.own_limit(context)
        started = time.monotonic()
        code = grpc.StatusCode.OK
        with self._span(method, context) as span:
            try:
                await self.in_flight.admit(context)
                await self._bounds.check_input(request, context)
                with self.in_flight.track():
                    try:
                        async with asyncio.timeout(limit) as scope:
                            yield
                    except (grpc.aio.AbortError, asyncio.CancelledError):
                        raise
                    except Exception as exc:
                        if isinstance(exc, TimeoutError) and scope.expired():
                            await self._bounds.abort_expired(context)
                        await _abort_for(exc, context, method)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                if not self.in_flight.ending:
                    code = grpc.StatusCode.CANCELLED
                    raise
                code = grpc.StatusCode.UNAVAILABLE
                await context.abort(
                    code, "the server shut down before this call finished; retry the request", own_trailers(context)
                )
            finally:
                _observe(method, code, time.monotonic() - started)
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code != grpc.StatusCode.OK:
                        span.set_status(Status(StatusCode.ERROR, code.name))

    @contextmanager
    def _span(self, method: str, context: Context) -> Iterator[trace.Span | None]:
        """A server span, child of the caller's (W3C trace context in the metadata)."""
        if self._tracer is None:
            yield None
            return
        carrier = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        service, name = _split(method)
        with self._tracer.start_as_current_span(
            method.lstrip("/"),
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span


class Bounds:
    """A service's own limits on each call, so a direct caller cannot get around what the gateway enforces."""

    def __init__(self, max_input_chars: int | None, default_deadline_s: float | None) -> None:
        self.max_input_chars = max_input_chars
        self.default_deadline_s = default_deadline_s

    def own_limit(self, context: Context) -> float | None:
        """Sets the call's deadline for the layers below; returns our own time limit when the caller sent none."""
        remaining = context.time_remaining()
        limit = self.default_deadline_s if remaining is None else None
        set_deadline_in(remaining if limit is None else limit)
        return limit

    async def check_input(self, request: Any, context: Context) -> None:
        if self.max_input_chars is None:
            return
        chars = text_chars(request)
        if chars > self.max_input_chars:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request has {chars} characters of text; this service accepts at most {self.max_input_chars}",
                (OWN_STATUS,),
            )

    async def abort_expired(self, context: Context) -> None:
        await context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the call sent no deadline and ran past this service's default of {self.default_deadline_s:g} s",
            (OWN_STATUS,),
        )


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _observe(method: str, code: grpc.StatusCode, seconds: float) -> None:
    service, name = _split(method)
    metrics.grpc_server_handled.labels(service, name, code.name).inc()
    metrics.grpc_server_duration.labels(service, name).observe(seconds)


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
