"""`python -m agentmesh.rpc.healthcheck HOST:PORT [--service NAME]`: exit 0 iff the server says SERVING.

Used by container healthchecks; one grpc.health.v1 Check with a short deadline. With GRPC_TLS_* set (as for the
service itself) it speaks mutual TLS; GRPC_TLS_SERVER_NAME names the certificate's host when the target does not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.rpc.tls import PLAINTEXT, TlsFiles
from agentmesh.settings import GrpcTlsSettings, load_settings


def _channel(target: str, tls: TlsFiles) -> grpc.Channel:
    credentials = tls.channel_credentials()
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials, options=tls.channel_options())


def check(target: str, service: str = "", timeout_s: float = 3.0, tls: TlsFiles = PLAINTEXT) -> str:
    """Returns the status name ("SERVING", "NOT_SERVING", ...) or raises grpc.RpcError."""
    with _channel(target, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gRPC health check: exit 0 iff SERVING.")
    parser.add_argument("target", help="host:port, e.g. 127.0.0.1:50052")
    parser.add_argument("--service", default="", help="service name to check (default: the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    args = parser.parse_args(argv)
    try:
        status = check(args.target, args.service, args.timeout, load_settings(GrpcTlsSettings).grpc_tls)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        print(f"{args.target}: health check failed: {code.name if code else exc}", file=sys.stderr)
        return 1
    print(f"{args.target}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
