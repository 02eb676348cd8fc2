"""Every Prometheus metric agentmesh exports, defined once; labels are bounded sets, never ids.

Each process uses the parts it needs; a gRPC service serves them on METRICS_PORT, the gateway on /metrics.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets from a cache hit to a long model answer.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
OTHER = "other"

http_requests = Counter(
    "agentmesh_http_requests_total",
    "HTTP requests by route and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
http_duration = Histogram(
    "agentmesh_http_request_duration_seconds",
    "HTTP request latency until the response ended (streams included).",
    ["route", "method"],
    buckets=SECONDS,
    registry=REGISTRY,
)
streams_in_flight = Gauge("agentmesh_streams_in_flight", "Open SSE streams.", registry=REGISTRY)
rate_limit_rejections = Counter(
    "agentmesh_rate_limit_rejections_total", "Requests refused by a rate limit.", ["scope"], registry=REGISTRY
)
spend_refusals = Counter(
    "agentmesh_spend_refusals_total",
    "Requests refused by spend control: daily_budget (429) or cost_cap (a cap too small for the run, 400).",
    ["reason"],
    registry=REGISTRY,
)

grpc_server_handled = Counter(
    "agentmesh_grpc_server_handled_total",
    "gRPC calls served, by status.",
    ["service", "method", "code"],
    registry=REGISTRY,
)
grpc_server_duration = Histogram(
    "agentmesh_grpc_server_handling_seconds",
    "gRPC call duration on the server.",
    ["service", "method"],
    buckets=SECONDS,
    registry=REGISTRY,
)
grpc_client_handled = Counter(
    "agentmesh_grpc_client_handled_total",
    "gRPC calls made, by status.",
    ["service", "method", "code"],
    registry=REGISTRY,
)
grpc_client_duration = Histogram(
    "agentmesh_grpc_client_handling_seconds",
    "gRPC call duration seen by the caller.",
    ["service", "method"],
    buckets=SECONDS,
    registry=REGISTRY,
)

llm_calls = Counter(
    "agentmesh_llm_calls_total",
    "LLM calls by outcome (ok or an error class).",
    ["agent", "model", "outcome"],
    registry=REGISTRY,
)
llm_duration = Histogram(
    "agentmesh_llm_call_duration_seconds", "LLM call latency.", ["agent", "model"], buckets=SECONDS, registry=REGISTRY
)
llm_first_token = Histogram(
    "agentmesh_llm_time_to_first_token_seconds",
    "Time from a streamed LLM call's start to its first text.",
    ["agent", "model"],
    buckets=SECONDS,
    registry=REGISTRY,
)
llm_tokens = Counter(
    "agentmesh_llm_tokens_total",
    "LLM tokens by direction: input, output, cache_creation, cache_read.",
    ["agent", "model", "direction"],
    registry=REGISTRY,
)
llm_cost = Counter(
    "agentmesh_llm_cost_usd_total", "Spend on priced LLM calls, in US dollars.", ["agent", "model"], registry=REGISTRY
)
llm_unpriced_calls = Counter(
    "agentmesh_llm_unpriced_calls_total",
    "LLM calls whose model has no price: their cost is unknown, not zero.",
    ["agent", "model"],
    registry=REGISTRY,
)

subtasks = Counter(
    "agentmesh_subtasks_total",
    "Subtasks by outcome: ok, failed, skipped, timed_out, over_budget.",
    ["outcome"],
    registry=REGISTRY,
)
# Team and specialist names come from TEAMS_DIR: a bounded set, known at start-up.
specialist_subtasks = Counter(
    "agentmesh_specialist_subtasks_total",
    "Subtasks a worker ran, by team, specialist and outcome (ok or the error class).",
    ["team", "specialist", "outcome"],
    registry=REGISTRY,
)
specialist_duration = Histogram(
    "agentmesh_specialist_subtask_duration_seconds",
    "Time a worker spent on one subtask, by team and specialist.",
    ["team", "specialist"],
    buckets=SECONDS,
    registry=REGISTRY,
)
plan_size = Histogram(
    "agentmesh_plan_subtasks", "Subtasks per plan.", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=REGISTRY
)
plan_fallbacks = Counter(
    "agentmesh_plan_fallbacks_total", "Plans replaced by the one-subtask fallback.", registry=REGISTRY
)
# Server and tool names come from team files (a tool only when the allow-list names it, else "*"): bounded.
tool_calls = Counter(
    "agentmesh_tool_calls_total",
    "MCP tool calls a worker made, by server, tool and outcome (ok, error, timeout, refused, unavailable).",
    ["server", "tool", "outcome"],
    registry=REGISTRY,
)
tool_duration = Histogram(
    "agentmesh_tool_call_duration_seconds",
    "MCP tool call latency, refusals and fast failures included.",
    ["server", "tool"],
    buckets=SECONDS,
    registry=REGISTRY,
)
mcp_server_up = Gauge(
    "agentmesh_mcp_server_up",
    "1 while a worker's session with the MCP server works, else 0.",
    ["server"],
    registry=REGISTRY,
)
runs_in_flight = Gauge("agentmesh_runs_in_flight", "Orchestrator runs in progress.", registry=REGISTRY)
circuit_breaker_state = Gauge(
    "agentmesh_circuit_breaker_state",
    "Circuit breaker per model: 0 closed, 1 half-open, 2 open.",
    ["model"],
    registry=REGISTRY,
)


def bounded(value: str, known: Collection[str]) -> str:
    """A label value from a known set, or ``other``: a typo must not mint a new time series."""
    return value if value in known else OTHER


def listen_host(listen: str) -> str:
    """The host part of a gRPC listen address: metrics bind where the service does."""
    host = listen.rsplit(":", 1)[0]
    return host.strip("[]") or "0.0.0.0"


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serves this process's registry on ``port`` (0 disables) in a background thread."""
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)


BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def export_breaker_state(model: str, state: str) -> None:
    """Breakers exist per configured model (a bounded set), created on their first call."""
    circuit_breaker_state.labels(model).set(BREAKER_STATE_VALUES[state])
