"""OpenTelemetry for every process: one tracer provider exporting over OTLP, once an endpoint is set.

Without OTEL_EXPORTER_OTLP_ENDPOINT nothing is installed: spans nobody receives took a quarter of the mesh's CPU
per request and half its added latency, even unsampled (the instrumentation wraps every call and ASGI message).
Request ids still tie the log lines of one request together; trace ids join them once tracing is on.
OTEL_SDK_DISABLED=true keeps tracing off even with an endpoint.
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentmesh.settings import CommonSettings

_provider: TracerProvider | None = None


def configure_tracing(service: str, settings: CommonSettings) -> TracerProvider | None:
    """Installs the process's tracer provider; call once, before any server or channel is created."""
    global _provider
    if settings.otel_sdk_disabled or not settings.otel_exporter_otlp_endpoint:
        return None
    name = settings.otel_service_name or f"agentmesh-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flushes spans still queued for export."""
    if _provider is not None:
        _provider.shutdown()


# Health and reflection stay untraced: they are noise in traces. The instrumentation package ships without
# type hints. Server spans come from our own interceptor (agentmesh.rpc.interceptors): the package's aio
# server interceptor wraps streams in an async generator, which grpc.aio abandons unclosed on cancellation.
_TRACED = filters.negate(
    filters.any_of(filters.service_prefix("grpc.health"), filters.service_prefix("grpc.reflection"))
)


def tracing_installed() -> bool:
    """Whether this process exports spans; SDK clients made before ``configure_tracing`` would not know."""
    return _provider is not None


def server_tracer() -> trace.Tracer | None:
    """The tracer of the server interceptor's spans, or None when tracing is off."""
    return None if _provider is None else _provider.get_tracer("agentmesh.rpc")


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    if _provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=_provider, filter_=_TRACED))  # type: ignore[no-untyped-call]


def current_trace_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex, for log lines; None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
