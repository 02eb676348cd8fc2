"""Soak: N concurrent streamed requests held H seconds each, against the fake Anthropic API.

Starts the fake Messages API and all four services as processes (the real Anthropic SDK path), opens
``--streams`` streaming chat completions at once (fanout ``--fanout``), and holds each one ``--hold`` seconds in
synthesis. Reports completed and errored streams, the failed subtasks any answer was written without, the
upstream calls the fake saw against the 1 plan + fanout workers + 1 synthesis each request should cost, and
the resident memory of the four services: per open stream (while every stream is open) and after the round,
round after round (flat means nothing is kept).

    .venv/bin/python -m bench.soak --streams 1000 --hold 120 [--fanout 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

API_KEY = "sk-ant-soak-fake-key-0123456789"


@dataclass
class Round:
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failed_subtasks: Counter[str] = field(default_factory=Counter)
    in_synthesis: int = 0
    all_open: asyncio.Event = field(default_factory=asyncio.Event)

    def stream_in_synthesis(self, streams: int) -> None:
        """Counts one more stream held in synthesis; the last of ``streams`` sets ``all_open``."""
        self.in_synthesis += 1
        if self.in_synthesis == streams:
            self.all_open.set()


def rss_by_service(mesh: ProcessMesh) -> dict[str, int]:
    """Resident memory of each service process, in KiB."""
    sizes: dict[str, int] = {}
    for service in mesh.services:
        for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes[service.log_path.stem] = int(line.split()[1])
    return sizes


def rss_kb(mesh: ProcessMesh) -> int:
    """Resident memory of the four services together (every worker replica included), in KiB."""
    return sum(rss_by_service(mesh).values())


async def one_stream(client: httpx.AsyncClient, token: str, prompt: str, streams: int, result: Round) -> None:
    body = {
        "model": "agentmesh",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    counted = False
    try:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            if response.status_code != 200:
                result.errors[f"HTTP {response.status_code}"] += 1
                return
            error = None
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    error = chunk["error"].get("type", "error") + ": " + chunk["error"].get("message", "")[:80]
                    continue
                progress = "".join(c["delta"].get("reasoning_content") or "" for c in chunk["choices"])
                for progress_line in progress.splitlines():
                    if progress_line.startswith("✗"):  # a subtask the answer is written without, and why
                        result.failed_subtasks[progress_line.split(" ", 2)[-1][:100]] += 1
                if not counted and any(c["delta"].get("content") for c in chunk["choices"]):
                    counted = True  # the first answer text: this stream is now held in synthesis
                    result.stream_in_synthesis(streams)
            if error:
                result.errors[error] += 1
            else:
                result.completed += 1
    except httpx.HTTPError as exc:
        result.errors[f"{type(exc).__name__}"] += 1
    finally:
        if not counted:
            # An early end still counts, or the memory sample would wait forever.
            result.stream_in_synthesis(streams)


async def soak_round(mesh: ProcessMesh, args: argparse.Namespace, round_no: int) -> tuple[Round, dict[str, int]]:
    """Runs one round; returns it and the memory per service sampled while every stream was open."""
    result = Round()
    prompt = "\n".join(f"part {i} of soak round {round_no}" for i in range(args.fanout))
    tokens = [mint_token(mesh.jwt_secret, subject=f"soak-{i}") for i in range(args.streams)]
    limits = httpx.Limits(max_connections=args.streams + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(args.hold + 300, connect=60)
    async with httpx.AsyncClient(base_url=mesh.base_url, limits=limits, timeout=timeout) as client:
        tasks = [asyncio.create_task(one_stream(client, t, prompt, args.streams, result)) for t in tokens]
        await result.all_open.wait()
        peak = rss_by_service(mesh)
        await asyncio.gather(*tasks)
    return result, peak


def upstream_check(fake: FakeAnthropicProcess, fanout: int) -> tuple[Counter[str], int, int]:
    """Calls per agent, and how many requests had exactly 1 plan + fanout workers + 1 synthesis (and how many not)."""
    per_request: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for request in fake.requests():
        agent = agent_of(request)
        totals[agent] += 1
        request_id = request["headers"].get("x-request-id", "?")
        per_request.setdefault(request_id, Counter())[agent] += 1
    expected = Counter({"orchestrator": 1, "worker": fanout, "synthesizer": 1})
    exact = sum(1 for calls in per_request.values() if calls == expected)
    return totals, exact, len(per_request) - exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds each stream spends in synthesis")
    parser.add_argument("--fanout", type=int, default=3)
    parser.add_argument("--call-latency", type=float, default=0.0, help="seconds every model call waits to answer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", nargs="*", default=[], help="extra NAME=VALUE settings for every service")
    parser.add_argument("--logs", type=Path, default=None, help="keep the services' logs in this folder")
    args = parser.parse_args()
    with spawn_fake_anthropic(api_key=API_KEY) as fake, tempfile.TemporaryDirectory() as scratch:
        workdir = args.logs or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": fake.base_url,
            "RATE_LIMIT_ENABLED": "false",
            "REQUEST_TIMEOUT": str(args.hold + 180),
            "SYNTHESIS_TIMEOUT": str(args.hold + 120),
            "WORKER_COORDINATION_TIMEOUT": "120",
            "PLANNING_TIMEOUT": "120",
            # The soak holds every stream at once in one process per service: no load shedding here.
            "GRPC_MAX_CONCURRENT_RPCS": "0",
            **dict(item.split("=", 1) for item in args.env),
        }
        with process_mesh(workdir, env=env) as mesh:
            asyncio.run(warm_up(mesh))
            start = rss_by_service(mesh)
            before = sum(start.values())
            print(
                f"{args.streams} streams x {args.hold:g} s hold, fanout {args.fanout}, "
                f"{args.call_latency:g} s per call; services at {before} KiB"
            )
            for round_no in range(1, args.rounds + 1):
                fake.control("POST", "reset")  # also forgets the default behaviour: set it again
                fake.control("POST", "default", {"stream_hold_s": args.hold, "latency_s": args.call_latency})
                started = time.monotonic()
                result, open_sizes = asyncio.run(soak_round(mesh, args, round_no))
                peak = sum(open_sizes.values())
                fake.wait_for_state(within_s=60, in_flight=0)
                after = rss_kb(mesh)
                totals, exact, wrong = upstream_check(fake, args.fanout)
                expected = args.streams * (args.fanout + 2)
                print(f"-- round {round_no}: {time.monotonic() - started:.0f} s")
                print(f"   completed {result.completed}/{args.streams}, errored {sum(result.errors.values())}")
                for error, count in result.errors.most_common(5):
                    print(f"     {count} x {error}")
                print(f"   answers missing subtasks: {sum(result.failed_subtasks.values())}")
                for reason, count in result.failed_subtasks.most_common(5):
                    print(f"     {count} x {reason}")
                print(
                    f"   upstream calls {sum(totals.values())} (expected {expected}): {dict(totals)}; "
                    f"requests with exactly 1+{args.fanout}+1 calls: {exact}, other: {wrong}"
                )
                print(
                    f"   memory: {(peak - before) / args.streams:.1f} KiB per open stream "
                    f"(peak {peak} KiB); after the round {after} KiB ({after - before:+d} KiB since start)"
                )
                growth = ", ".join(f"{name} {(open_sizes[name] - start[name]) / args.streams:.1f}" for name in start)
                print(f"   KiB per open stream by service: {growth}")


async def warm_up(mesh: ProcessMesh) -> None:
    token = mint_token(mesh.jwt_secret)
    async with httpx.AsyncClient(base_url=mesh.base_url, timeout=60) as client:
        for _ in range(3):
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "agentmesh", "messages": [{"role": "user", "content": "warm\nup"}]},
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()


if __name__ == "__main__":
    main()
