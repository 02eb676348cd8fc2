"""The headline figures of one hop's cost, each beside its floor: a direct call to the same fake model API.

Starts the fake Anthropic Messages API (model latency ``--latency-ms`` before each answer, ``--token-ms`` between
streamed deltas) and all four services as processes, then measures, through the gateway with the openai SDK:

- overhead over the ideal critical path (plan + slowest worker + synthesis, each timed as a direct SDK call to
  the fake) and time-to-first-token overhead, at fanout 1, 4, 16 and 32 (median of ``--runs``);
- the spread of worker start times as the fake sees them, at fanout 32, and how long after the plan's answer the
  last worker request arrives (what the critical path pays);
- requests/s and CPU ms per request (all service processes) at 32 concurrent streams with no model latency,
  beside the same for direct calls (5 per request: 1 plan, 3 workers, 1 synthesis, in the mesh's order).

    .venv/bin/python -m bench.headline [--runs 5] [--requests 300] [--workers 1] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import openai

from bench._fake_model_mesh import API_KEY, MODEL, add_mesh_arguments, mesh_from_arguments
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of
from tests.support.processes import ProcessMesh

PLAN_TOOL: Any = {
    "name": "plan",
    "description": "plan",
    "input_schema": {"type": "object", "properties": {"subtasks": {"type": "array"}}},
}
TICKS = os.sysconf("SC_CLK_TCK")
ANSWER = " ".join(f"word{i}" for i in range(20))


def prompt(fanout: int) -> str:
    return "\n".join(f"research topic number {i}" for i in range(fanout))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def direct_calls(client: anthropic.AsyncAnthropic, fanout: int) -> tuple[float, float]:
    """One run's model calls made directly, in the mesh's order: (total, time to the synthesis's first text)."""
    started = time.perf_counter()
    messages: Any = [{"role": "user", "content": prompt(fanout)}]
    await client.messages.create(
        model=MODEL, max_tokens=512, messages=messages, tools=[PLAN_TOOL], tool_choice={"type": "tool", "name": "plan"}
    )
    workers = [
        client.messages.create(model=MODEL, max_tokens=512, messages=[{"role": "user", "content": f"Subtask t{i}"}])
        for i in range(fanout)
    ]
    await asyncio.gather(*workers)
    first = 0.0
    # Raw events, as the mesh's synthesizer reads them (agentmesh.llm.anthropic).
    events = await client.messages.create(model=MODEL, max_tokens=512, messages=messages, stream=True)
    async with events:
        async for event in events:
            if not first and event.type == "content_block_delta":
                first = time.perf_counter() - started
    return time.perf_counter() - started, first


async def mesh_call(client: openai.AsyncOpenAI, fanout: int) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": prompt(fanout)}], stream=True
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return time.perf_counter() - started, first


async def median_of(runs: int, call: Callable[[], Awaitable[tuple[float, float]]]) -> tuple[float, float]:
    results = [await call() for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


async def throughput(
    requests: int, concurrency: int, call: Callable[[], Awaitable[object]], pids: dict[str, int]
) -> tuple[float, dict[str, float]]:
    """(requests/s, CPU ms per request of each of ``pids``) for ``requests`` calls, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await call()

    cpu_before, started = {name: cpu_seconds(pid) for name, pid in pids.items()}, time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    wall = time.perf_counter() - started
    cpu_ms = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / requests for name, pid in pids.items()}
    return requests / wall, cpu_ms


def worker_starts_ms(fake: FakeAnthropicProcess) -> tuple[float, float]:
    """(spread of the worker requests' arrivals, last arrival after the plan's answer), as the fake saw them.

    The second is what the critical path pays. A floor that gathers 32 SDK calls shows a small spread only because
    each request's body is written after all 32 are built; its last request still leaves late.
    """
    requests = fake.requests()
    (planned,) = (float(r["finished_s"]) for r in requests if agent_of(r) == "orchestrator")
    starts = [float(r["received_s"]) for r in requests if agent_of(r) == "worker"]
    return (max(starts) - min(starts)) * 1000, (max(starts) - planned) * 1000


async def measure(mesh: ProcessMesh, fake: FakeAnthropicProcess, args: argparse.Namespace) -> None:
    # The transport the mesh's providers use (agentmesh.llm.anthropic), so the floor is the same SDK path.
    direct = anthropic.AsyncAnthropic(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, http_client=anthropic.DefaultAioHttpClient()
    )
    gateway = openai.AsyncOpenAI(
        base_url=f"{mesh.base_url}/v1", api_key=mint_token(mesh.jwt_secret), max_retries=0, timeout=120
    )
    # One fixed answer for every text call, so a direct call and the mesh's stream the same number of tokens.
    latency = {"latency_s": args.latency_ms / 1000, "delta_delay_s": args.token_ms / 1000, "text": ANSWER}
    fake.control("POST", "default", latency)
    await mesh_call(gateway, 2)  # warm-up: connections, imports
    print(f"model latency {args.latency_ms} ms + {args.token_ms} ms/token; median of {args.runs} runs")
    print(f"{'fanout':>6} {'ideal ms':>9} {'mesh ms':>8} {'overhead ms':>12} {'TTFT ideal':>11} {'TTFT over ms':>13}")
    for fanout in (1, 4, 16, 32):
        ideal, ideal_first = await median_of(args.runs, lambda f=fanout: direct_calls(direct, f))  # type: ignore[misc]
        total, first = await median_of(args.runs, lambda f=fanout: mesh_call(gateway, f))  # type: ignore[misc]
        print(
            f"{fanout:>6} {ideal * 1000:>9.1f} {total * 1000:>8.1f} {(total - ideal) * 1000:>12.1f} "
            f"{ideal_first * 1000:>11.1f} {(first - ideal_first) * 1000:>13.1f}"
        )
    for label, run in (("mesh", lambda: mesh_call(gateway, 32)), ("direct (floor)", lambda: direct_calls(direct, 32))):
        spreads, lasts = [], []
        for _ in range(args.runs):
            fake.control("POST", "reset")
            fake.control("POST", "default", latency)
            await run()
            spread, last = worker_starts_ms(fake)
            spreads.append(spread)
            lasts.append(last)
        print(
            f"worker start spread at fanout 32, {label}: median {statistics.median(spreads):.1f} ms, "
            f"max {max(spreads):.1f} ms; last worker request {statistics.median(lasts):.1f} ms after the plan's "
            f"answer (max {max(lasts):.1f})"
        )
    fake.control("POST", "reset")  # no model latency from here on
    pids = {s.log_path.stem: s.process.pid for s in mesh.services}  # worker0, worker1, ... when replicated
    rate, cpu = await throughput(args.requests, 32, lambda: mesh_call(gateway, 3), pids)
    direct_rate, direct_cpu = await throughput(
        args.requests, 32, lambda: direct_calls(direct, 3), {"bench": os.getpid()}
    )
    by_service = ", ".join(f"{name} {ms:.1f}" for name, ms in cpu.items())
    print(f"32 concurrent streams, fanout 3, no model latency, {args.requests} requests:")
    print(f"   mesh: {rate:.1f} requests/s, {sum(cpu.values()):.1f} CPU ms per request ({by_service})")
    print(
        f"   direct calls to the fake (floor): {direct_rate:.1f} requests/s, "
        f"{direct_cpu['bench']:.1f} CPU ms per request (the calling process)"
    )
    await direct.close()
    await gateway.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--token-ms", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    add_mesh_arguments(parser)
    args = parser.parse_args()
    with mesh_from_arguments(args) as (mesh, fake):
        asyncio.run(measure(mesh, fake, args))


if __name__ == "__main__":
    main()
