"""Gateway throughput and p50 latency with full instrumentation on, and with tracing off.

Two runs: tracing on with every span exported over OTLP/HTTP to a receiver in this process (which
decodes them, on the same two cores); and the default, no endpoint, which installs no tracing at all.
Prometheus metrics and JSON logs are on in both.
Offline model with zero latency and rate limits off, so the figures are the mesh's own cost. Requests
are non-streaming, sent by a pool of concurrent clients.

    .venv/bin/python -m bench.instrumentation_overhead [--requests 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import mint_token
from tests.support.otlp_receiver import otlp_receiver
from tests.support.processes import process_mesh


async def _load(base_url: str, token: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    body = {"model": "agentmesh", "messages": [{"role": "user", "content": "a\nb"}]}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def _measure(env: dict[str, str], requests: int, concurrency: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as workdir, process_mesh(Path(workdir), env=env) as mesh:
        token = mint_token(mesh.jwt_secret)
        asyncio.run(_load(mesh.base_url, token, 50, concurrency))  # warm-up
        elapsed, latencies = asyncio.run(_load(mesh.base_url, token, requests, concurrency))
    ordered = sorted(latencies)
    return requests / elapsed, statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    base = {"OFFLINE_LATENCY_MS": "0", "RATE_LIMIT_ENABLED": "false"}
    with otlp_receiver() as (receiver, endpoint):
        exporting = _measure({**base, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, args.requests, args.concurrency)
        exported = len(receiver.spans)
    off = _measure(base, args.requests, args.concurrency)  # the default: no endpoint, no tracing
    print(f"{args.requests} requests, {args.concurrency} concurrent; spans exported: {exported}")
    print(f"{'tracing':>22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'throughput':>11} {'p50':>9}")
    for label, (throughput, p50, p99) in (
        ("on, OTLP export", exporting),
        ("off (no endpoint)", off),
    ):
        change = (throughput / off[0] - 1) * 100
        print(f"{label:>22} {throughput:>8.1f} {p50:>8.1f} {p99:>8.1f} {change:>+10.1f}% {p50 - off[1]:>+7.1f}ms")


if __name__ == "__main__":
    main()
