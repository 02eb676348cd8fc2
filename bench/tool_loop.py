"""The tool loop's own cost: concurrent subtasks of four tool calls each against one local MCP server.

A worker (in this process, on a loopback port) runs a specialist with four tools of the repository's demo MCP
server, served over streamable HTTP by a child process that journals what it sees. The offline model drives the
loop: turn 1 calls the four tools at once, turn 2 answers from their results (no model latency, so what is left
is the mesh's). Each subtask is a direct ``Worker.Execute``. Reported: errors (a call not ``ok``, a failed
Execute), the MCP sessions the server saw (one per worker process is the goal, not one per call), and the overhead
a tool turn adds beyond model and tool time: (Execute's duration - a call of the same worker without tools - the
slowest tool call of each turn) / tool turns, median over subtasks.

    .venv/bin/python -m bench.tool_loop [--subtasks 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx

from agentmesh.llm.offline import OfflineProvider
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tests.support.processes import REPO_ROOT, free_port
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings

TOOLS = ["lookup_fact", "word_count", "add", "big"]


def make_team(root: Path, url: str) -> Path:
    workers = root / "bench" / "workers"
    workers.mkdir(parents=True)
    (root / "bench" / "orchestrator.md").write_text("Plan.\n")
    (root / "bench" / "synthesizer.md").write_text("Merge.\n")
    allowed = ", ".join(f'"demo.{tool}"' for tool in TOOLS)
    (workers / "tooled.md").write_text(
        f"---\ndescription: uses tools\nmcp_servers:\n  - name: demo\n    url: {url}\ntools: [{allowed}]\n"
        "max_turns: 4\ntool_timeout: 10\n---\nUse the tools.\n"
    )
    (workers / "plain.md").write_text("---\ndescription: no tools\n---\nAnswer.\n")
    return root


@contextmanager
def demo_server(journal: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "agentmesh.tools.demo_server", "--http", str(port), "--journal", str(journal)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 20
        while True:  # a start-up poll of a child process, not test synchronisation
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the demo MCP server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def sessions(journal: Path) -> int:
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return sum(1 for line in lines if line.get("event") == "initialize")


async def execute(stub: worker_pb2_grpc.WorkerStub, agent: str, index: int) -> tuple[float, common_pb2.SubtaskResult]:
    subtask = common_pb2.Subtask(id=f"t{index}", title="bench", instruction=f"What is MCP? ({index})", agent=agent)
    started = time.perf_counter()
    response = await stub.Execute(worker_pb2.ExecuteRequest(team="bench", subtask=subtask), timeout=60)
    return time.perf_counter() - started, response.result


def overhead_ms(duration_s: float, baseline_s: float, result: common_pb2.SubtaskResult) -> float:
    turns: dict[int, int] = {}
    for call in result.tool_calls:
        turns[call.turn] = max(turns.get(call.turn, 0), call.duration_ms)
    tool_ms = sum(turns.values())
    return ((duration_s - baseline_s) * 1000 - tool_ms) / max(1, len(turns))


async def measure(port: int, subtasks: int, rounds: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        for index in range(8):  # warm-up: connections, code paths
            await execute(stub, "tooled", index)
            await execute(stub, "plain", index)
        alone = [await execute(stub, "plain", i) for i in range(50)]
        baseline = statistics.median(d for d, _ in alone)
        single = [await execute(stub, "tooled", i) for i in range(50)]
        errors, fanned = 0, []
        for _ in range(rounds):
            results = await asyncio.gather(*(execute(stub, "tooled", i) for i in range(subtasks)))
            fanned.extend(results)
        for _, result in [*single, *fanned]:
            errors += sum(call.outcome != "ok" for call in result.tool_calls) + (len(result.tool_calls) != len(TOOLS))
        return {
            "baseline_ms": baseline * 1000,
            "alone_overhead_ms": statistics.median(overhead_ms(d, baseline, r) for d, r in single),
            "alone_subtask_ms": statistics.median(d for d, _ in single) * 1000,
            "fanout_overhead_ms": statistics.median(overhead_ms(d, baseline, r) for d, r in fanned),
            "fanout_subtask_ms": statistics.median(d for d, _ in fanned) * 1000,
            "tool_calls": float(sum(len(r.tool_calls) for _, r in [*single, *fanned])),
            "errors": float(errors),
        }


async def run(subtasks: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        journal = Path(workdir) / "journal.jsonl"
        with demo_server(journal) as url:
            teams = make_team(Path(workdir) / "teams", url)
            settings = WorkerSettings(teams_dir=str(teams), log_level="WARNING")
            worker = await start_worker(settings, OfflineProvider(), "127.0.0.1:0")
            try:
                figures = await measure(worker.port, subtasks, rounds)
            finally:
                await worker.stop(grace=1)
            seen = sessions(journal)
    print(f"{subtasks} concurrent subtasks x {len(TOOLS)} tool calls, {rounds} rounds, one worker process")
    print(f"  errors: {figures['errors']:.0f} of {figures['tool_calls']:.0f} tool calls")
    print(f"  MCP sessions the server saw: {seen} (goal: 1, one per worker process)")
    print(f"  a call without tools: {figures['baseline_ms']:.1f} ms (subtracted)")
    print(
        f"  one subtask alone: {figures['alone_subtask_ms']:.1f} ms; "
        f"overhead per tool turn {figures['alone_overhead_ms']:.2f} ms"
    )
    print(
        f"  {subtasks} at once: {figures['fanout_subtask_ms']:.1f} ms per subtask; "
        f"overhead per tool turn {figures['fanout_overhead_ms']:.2f} ms (goal <= 5 ms)"
    )
    if figures["errors"] or seen != 1:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subtasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.subtasks, args.rounds))


if __name__ == "__main__":
    main()
