"""One long-lived channel per downstream service, with its retry and balancing policy declared."""

from __future__ import annotations

import json
from typing import Any

import grpc

from agentmesh import telemetry
from agentmesh.rpc.interceptors import client_interceptors
from agentmesh.rpc.metrics_interceptors import client_metrics_interceptors
from agentmesh.rpc.options import MESSAGE_SIZE_OPTIONS
from agentmesh.rpc.tls import PLAINTEXT, TlsFiles


def service_config(service: str, *, retry_unavailable: bool) -> dict[str, Any]:
    """round_robin over every resolved address, skipping replicas whose health says NOT_SERVING.

    Only idempotent calls get ``retry_unavailable``: gRPC then retries UNAVAILABLE (a replica
    that died or is draining) on another address; never DEADLINE_EXCEEDED, never model errors.
    """
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": service},
    }
    if retry_unavailable:
        config["methodConfig"] = [
            {
                "name": [{"service": service}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return config


def create_channel(
    target: str, service: str, *, retry_unavailable: bool = False, tls: TlsFiles = PLAINTEXT
) -> grpc.aio.Channel:
    """A TLS channel when ``tls`` has a certificate (its health checks too: they share the channel)."""
    options: list[tuple[str, Any]] = [
        *MESSAGE_SIZE_OPTIONS,
        ("grpc.service_config", json.dumps(service_config(service, retry_unavailable=retry_unavailable))),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # A replica that comes back (restarted, rescheduled) gets traffic within seconds, not gRPC's 2 minutes.
        ("grpc.max_reconnect_backoff_ms", 5_000),
        *tls.channel_options(),
    ]
    interceptors = [*telemetry.client_interceptors(), *client_metrics_interceptors(), *client_interceptors()]
    credentials = tls.channel_credentials()
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
