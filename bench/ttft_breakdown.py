"""Where a streamed request's time to first token goes, hop by hop.

Starts the fake Messages API and the four services as processes, sends streamed requests one at a time with the
``openai`` SDK, and splits each one's time to first token with the fake's own record of when each model request
arrived and was answered (the client and the fake read the same CLOCK_MONOTONIC):

- client → plan request at the fake: the gateway, the Run call and the orchestrator before planning;
- plan answered → first and last worker request at the fake: plan handling, dispatch, and the worker accepting
  every call;
- last worker answered → synthesis request at the fake: results back, and the synthesis call;
- first synthesis delta → client: the delta relayed by the synthesizer, the orchestrator and the gateway.

Each segment holds some of the model calls' own client-side cost (building a request, parsing an answer),
which a direct call pays too: ``make bench`` stays the measure of overhead; this says where to look.

    .venv/bin/python -m bench.ttft_breakdown [--requests 21] [--fanout 4] [--latency-ms 100] [--workers 1]
        [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import openai

from bench._fake_model_mesh import add_mesh_arguments, mesh_from_arguments
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of
from tests.support.processes import ProcessMesh


async def one_request(client: openai.AsyncOpenAI, fanout: int) -> tuple[float, float]:
    """(start, first content) on the monotonic clock."""
    prompt = "\n".join(f"research topic number {i}" for i in range(fanout))
    started, first = time.monotonic(), 0.0
    stream = await client.chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": prompt}], stream=True
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.monotonic()
    return started, first


def segments(requests: list[dict[str, Any]], started: float, first: float, latency_s: float) -> dict[str, float]:
    def of(agent: str) -> list[dict[str, Any]]:
        return [r for r in requests if agent_of(r) == agent]

    (plan,), workers, (synthesis,) = of("orchestrator"), of("worker"), of("synthesizer")
    first_worker_sent = min(float(w["received_s"]) for w in workers)
    last_worker_sent = max(float(w["received_s"]) for w in workers)
    last_worker_answered = max(float(w["finished_s"]) for w in workers)
    return {
        "client -> plan request at the fake": float(plan["received_s"]) - started,
        "plan answered -> first worker request": first_worker_sent - float(plan["finished_s"]),
        "plan answered -> last worker request": last_worker_sent - float(plan["finished_s"]),
        "last worker answered -> synthesis request": float(synthesis["received_s"]) - last_worker_answered,
        "first synthesis delta -> client": first - (float(synthesis["received_s"]) + latency_s),
        "time to first token": first - started,
    }


async def measure(mesh: ProcessMesh, fake: FakeAnthropicProcess, args: argparse.Namespace) -> None:
    client = openai.AsyncOpenAI(base_url=f"{mesh.base_url}/v1", api_key=mint_token(mesh.jwt_secret), max_retries=0)
    latency_s = args.latency_ms / 1000
    rows = []
    for index in range(args.requests + 1):  # the first is a warm-up
        fake.control("POST", "reset")
        fake.control("POST", "default", {"latency_s": latency_s, "text": "one two three four"})
        started, first = await one_request(client, args.fanout)
        if index:
            rows.append(segments(fake.requests(), started, first, latency_s))
    await client.close()
    print(f"fanout {args.fanout}, model latency {args.latency_ms} ms per call, median of {args.requests} requests:")
    for name in rows[0]:
        print(f"{name:>45}: {statistics.median(row[name] for row in rows) * 1000:8.2f} ms")
    print(f"{'of which model latency':>45}: {3 * args.latency_ms:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=21)
    parser.add_argument("--fanout", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=100)
    add_mesh_arguments(parser)
    args = parser.parse_args()
    with mesh_from_arguments(args) as (mesh, fake):
        asyncio.run(measure(mesh, fake, args))


if __name__ == "__main__":
    main()
