"""Throughput of the mesh with 1, 2 and 3 worker replicas behind the orchestrator's round-robin channel.

Starts the services as processes (offline model at OFFLINE_LATENCY_MS), then keeps ``--concurrency`` runs of
``--subtasks`` independent subtasks open against the orchestrator for ``--seconds`` and counts the runs that
finished with every subtask done, and how the Execute calls spread over the replicas (from their own metrics).

    .venv/bin/python -m bench.replica_throughput [--replicas 1 2 3] [--latency-ms 0] [--concurrency 32]
        [--max-concurrent-rpcs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.processes import calls_served, process_mesh


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0


async def _client(stub: orchestrator_pb2_grpc.OrchestratorStub, text: str, until: float, tally: Tally) -> None:
    request = orchestrator_pb2.RunRequest(messages=[common_pb2.ChatMessage(role="user", content=text)])
    while time.monotonic() < until:
        try:
            events = [event async for event in stub.Run(request, timeout=60)]
        except grpc.aio.AioRpcError:
            tally.failed += 1
            continue
        errors = [e for e in events if e.HasField("subtask_finished") and e.subtask_finished.error]
        if errors:
            tally.failed += 1
        else:
            tally.ok += 1


async def _load(address: str, subtasks: int, concurrency: int, seconds: float) -> tuple[Tally, float]:
    text = "\n".join(f"research topic {i}" for i in range(subtasks))
    tally = Tally()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        await _client(stub, text, time.monotonic() + 1, Tally())  # warm-up: connections, imports
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(_client(stub, text, until, tally) for _ in range(concurrency)))
        return tally, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--subtasks", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-concurrent-rpcs", type=int, default=100, help="GRPC_MAX_CONCURRENT_RPCS per process")
    args = parser.parse_args()
    env = {
        "OFFLINE_LATENCY_MS": str(args.latency_ms),
        "MAX_SUBTASKS": str(args.subtasks),
        "GRPC_MAX_CONCURRENT_RPCS": str(args.max_concurrent_rpcs),
    }
    print(
        f"offline model at {args.latency_ms} ms per call; {args.concurrency} concurrent runs of {args.subtasks} "
        f"subtasks for {args.seconds:g} s; GRPC_MAX_CONCURRENT_RPCS={args.max_concurrent_rpcs}"
    )
    print(f"{'workers':>7} {'runs/s':>8} {'subtasks/s':>11} {'failed':>7}  Execute calls per replica")
    for replicas in args.replicas:
        with tempfile.TemporaryDirectory() as workdir, process_mesh(Path(workdir), env=env, workers=replicas) as mesh:
            tally, elapsed = asyncio.run(
                _load(mesh.orchestrator.address, args.subtasks, args.concurrency, args.seconds)
            )
            spread = [int(calls_served(w.metrics_port, "Execute")) for w in mesh.workers]
        rate = tally.ok / elapsed
        print(f"{replicas:>7} {rate:>8.1f} {rate * args.subtasks:>11.1f} {tally.failed:>7}  {spread}")


if __name__ == "__main__":
    main()
