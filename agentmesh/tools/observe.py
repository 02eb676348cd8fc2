"""Each tool call's metrics and its ``execute_tool`` span (OpenTelemetry GenAI semantic conventions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace

from agentmesh import metrics
from agentmesh.tools.types import ToolOutcome


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The global provider's by default: configure_tracing installs it; without it, spans go nowhere and cost
    next to nothing."""
    return trace.get_tracer("agentmesh.tools", tracer_provider=provider)


@contextmanager
def span(tracer: trace.Tracer, server: str, tool: str, call_id: str = "") -> Iterator[Callable[[ToolOutcome], None]]:
    """One ``execute_tool {tool}`` span around a call; the yielded function records its outcome on it."""
    attributes: dict[str, str] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.type": "extension",
        "mcp.method.name": "tools/call",
        "agentmesh.tool.server": server,
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    name = f"execute_tool {tool}"
    with tracer.start_as_current_span(name, kind=trace.SpanKind.INTERNAL, attributes=attributes) as s:

        def record(outcome: ToolOutcome) -> None:
            s.set_attribute("agentmesh.tool.outcome", outcome.outcome)
            s.set_attribute("agentmesh.tool.result_chars", outcome.result_chars)
            if outcome.is_error:
                s.set_attribute("error.type", outcome.outcome)
                s.set_status(trace.Status(trace.StatusCode.ERROR, outcome.outcome))

        yield record


def call_done(server: str, tool: str, outcome: str, duration_s: float) -> None:
    metrics.tool_calls.labels(server, tool, outcome).inc()
    metrics.tool_duration.labels(server, tool).observe(duration_s)


def server_up(server: str, up: bool) -> None:
    metrics.mcp_server_up.labels(server).set(1 if up else 0)
