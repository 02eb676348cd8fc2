"""Latency the gateway's edge adds: everything on, against the same gateway with auth and rate limits off.

Starts the four services as processes (offline model, OFFLINE_LATENCY_MS=0) with every edge feature on: JWT
auth, per-IP and per-subject rate limits (memory://, and redis:// when redis-server is installed), the
open-completions cap, security headers, CORS and HSTS. Next to that gateway it runs a second one in front of
the same orchestrator, built from the same settings with the auth middleware removed and rate limits off.
That variant exists only inside this module (``BENCH_SERVE_WITHOUT_AUTH`` is read here, never by the gateway),
so there is no switch that turns authentication off in a deployment.

One client sends non-streaming chat completions one at a time (and GET /v1/models, which never reaches the
orchestrator: the edge's cost without the mesh's noise), to each gateway in turn, and prints median and p99.

    .venv/bin/python -m bench.gateway_overhead [--requests 3000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import cast

import httpx
import uvicorn

from agentmesh.logging import configure_logging
from agentmesh.settings import load_settings
from gateway.__main__ import uvicorn_config
from gateway.app import create_app
from gateway.edge.auth import AuthMiddleware, current_principal
from gateway.edge.identity import Principal
from gateway.settings import GatewaySettings
from tests.e2e.conftest import mint_token
from tests.support.processes import ServiceProcess, free_port, process_mesh, spawn, wait_for_http_ready
from tests.support.redis_server import redis_server

BARE_ENV = "BENCH_SERVE_WITHOUT_AUTH"
CHAT = {"model": "agentmesh", "messages": [{"role": "user", "content": "hello"}]}
EDGE_ON = {
    "OFFLINE_LATENCY_MS": "0",
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_CHAT_COMPLETIONS": "10000000/minute",
    "RATE_LIMIT_DEFAULT": "10000000/minute",
    "RATE_LIMIT_PER_IP": "10000000/minute",  # one client address sends everything
    "MAX_CONCURRENT_STREAMS_PER_USER": "8",
    "CORS_ALLOW_ORIGINS": "https://app.example",
    "HSTS_MAX_AGE": "31536000",
}


def serve_without_auth_and_limits() -> None:
    """The comparison gateway: the real app minus AuthMiddleware, with rate limits off."""
    settings = load_settings(GatewaySettings).model_copy(update={"rate_limit_enabled": False})
    configure_logging("gateway-bare", settings.log_level, settings.log_format)
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if cast(object, m.cls) is not AuthMiddleware]
    app.dependency_overrides[current_principal] = lambda: Principal(subject="bench", claims={})
    # gateway.__main__'s config, without its drain-on-signal subclass (which costs nothing per request).
    uvicorn.Server(uvicorn_config(app, settings)).run()


def _time(client: httpx.Client, method: str, path: str, samples: list[float]) -> None:
    started = time.perf_counter()
    response = client.request(method, path, json=CHAT if method == "POST" else None)
    samples.append(time.perf_counter() - started)
    response.raise_for_status()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, round(len(ordered) * 0.99) - 1)] * 1000


@contextmanager
def _bare_gateway(workdir: Path, orchestrator: str, secret: str) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {
        **EDGE_ON,
        BARE_ENV: "1",
        "JWT_SECRET_KEY": secret,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "ORCHESTRATOR_TARGET": orchestrator,
    }
    gateway = spawn("gateway", "bench.gateway_overhead", env, workdir, "gateway-bare")
    gateway.port = port
    try:
        wait_for_http_ready(gateway, "/health/ready")
        yield gateway
    finally:
        gateway.stop()


def _measure(gateways: dict[str, str], token: str, requests: int) -> dict[str, dict[str, list[float]]]:
    """One request to each gateway in turn, the order rotating, so that drift and noise hit all of them alike."""
    samples: dict[str, dict[str, list[float]]] = {name: {"chat": [], "models": []} for name in gateways}
    headers = {"Authorization": f"Bearer {token}"}
    with ExitStack() as stack:
        clients = [
            (name, stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=30)))
            for name, url in gateways.items()
        ]
        for _, client in clients:  # warm-up: connections, imports, first-call caches
            for _ in range(100):
                _time(client, "POST", "/v1/chat/completions", [])
        for index in range(requests):
            shift = index % len(clients)
            for name, client in clients[shift:] + clients[:shift]:
                _time(client, "POST", "/v1/chat/completions", samples[name]["chat"])
                _time(client, "GET", "/v1/models", samples[name]["models"])
    return samples


def main() -> None:
    if os.environ.get(BARE_ENV) == "1":
        serve_without_auth_and_limits()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="per gateway and endpoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        mesh = stack.enter_context(process_mesh(workdir, env=EDGE_ON))
        bare = stack.enter_context(_bare_gateway(workdir, mesh.orchestrator.address, mesh.jwt_secret))
        gateways = {"edge on (memory://)": mesh.base_url}
        if shutil.which("redis-server"):
            redis_uri = stack.enter_context(redis_server(workdir))
            port = free_port()
            env = {
                **EDGE_ON,
                "JWT_SECRET_KEY": mesh.jwt_secret,
                "API_HOST": "127.0.0.1",
                "API_PORT": str(port),
                "ORCHESTRATOR_TARGET": mesh.orchestrator.address,
                "RATE_LIMIT_STORAGE_URI": redis_uri,
            }
            redis_gateway = spawn("gateway", "gateway", env, workdir, "gateway-redis")
            redis_gateway.port = port
            stack.callback(redis_gateway.stop)
            wait_for_http_ready(redis_gateway, "/health/ready")
            gateways["edge on (redis://)"] = f"http://{redis_gateway.address}"
        gateways["auth + rate limits off"] = f"http://{bare.address}"
        samples = _measure(gateways, mint_token(mesh.jwt_secret), args.requests)
    _report(samples, args.requests)


def _report(samples: dict[str, dict[str, list[float]]], requests: int) -> None:
    baseline = samples["auth + rate limits off"]
    print(f"{requests} sequential requests per gateway and endpoint; offline model, OFFLINE_LATENCY_MS=0")
    print(f"{'gateway':<24} {'endpoint':<22} {'median ms':>10} {'p99 ms':>8} {'+median':>8} {'+p99':>8}")
    for name, by_endpoint in samples.items():
        for endpoint, path in (("chat", "POST /chat/completions"), ("models", "GET /models")):
            median, p99 = _percentiles(by_endpoint[endpoint])
            base_median, base_p99 = _percentiles(baseline[endpoint])
            added = f"{median - base_median:>+8.3f} {p99 - base_p99:>+8.3f}"
            print(f"{name:<24} {path:<22} {median:>10.3f} {p99:>8.3f} {added}")


if __name__ == "__main__":
    main()
