"""Channel and server options both ends agree on."""

from __future__ import annotations

# Long model outputs (and a synthesizer request holding every subtask's output) exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

MESSAGE_SIZE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

DEFAULT_MAX_CONNECTION_AGE_S = 30.0

# grpc.aio accepts calls one event-loop turn at a time. Past grpc core's default of 1000 calls waiting to be
# accepted, core cancels waiting calls (the client sees CANCELLED "CANCELLED"; the handler never runs, so nothing
# is logged): a burst of 1000 runs x 3 subtasks lost subtasks that way. Calls wait for the application instead,
# bounded by their own deadlines; GRPC_MAX_CONCURRENT_RPCS is the place to shed load, loudly.
MAX_PENDING_CALLS = 1_000_000


def server_options(
    max_connection_age_s: float = DEFAULT_MAX_CONNECTION_AGE_S, max_connection_age_grace_s: float = 0.0
) -> list[tuple[str, int]]:
    """What every server sets; the connection age keeps scaled-out replicas balanced without cutting calls.

    A connection older than ``max_connection_age_s`` gets a GOAWAY: its client opens a new one (re-resolving
    DNS, so replicas added later get traffic) and sends new calls there, while the calls already in flight
    finish on the old one. The grace is how long they may take before being cut: 0 (the default) never cuts
    them, because every call carries its own deadline and a model run may legitimately last minutes.
    """
    options = [
        *MESSAGE_SIZE_OPTIONS,
        ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
        ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    if max_connection_age_s > 0:
        options.append(("grpc.max_connection_age_ms", round(max_connection_age_s * 1000)))
    if max_connection_age_grace_s > 0:
        options.append(("grpc.max_connection_age_grace_ms", round(max_connection_age_grace_s * 1000)))
    return options
