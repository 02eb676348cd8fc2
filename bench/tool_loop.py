"""The tool loop's own cost: concurrent subtasks of four tool calls each against one local MCP server.

A worker process (``python -m worker_svc``, offline model, no model latency) runs a specialist with four tools of
the repository's demo MCP server, served over streamable HTTP by a child process that journals what it sees. The
offline model drives the loop: turn 1 calls the four tools at once, turn 2 answers from their results. Each subtask
is a direct ``Worker.Execute``. Reported: errors (a call not ``ok``, a subtask without its four calls), the MCP
sessions the server saw (one per worker process is the goal, not one per call), and what a tool turn adds beyond
model and tool time, two ways: the worker's CPU per tool turn (its CPU per tool subtask less that of a subtask
without tools), and the latency (Execute's duration - a subtask without tools - the slowest call of each turn),
median over subtasks, for one subtask at a time and for ``--subtasks`` at once (there queueing for the CPU counts).

    .venv/bin/python -m bench.tool_loop [--subtasks 32] [--rounds 5] [--transport http|stdio]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import httpx

from agentmesh.settings import DEFAULT_TEAMS_DIR
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tests.support.processes import REPO_ROOT, ServiceProcess, free_port, spawn, wait_for_grpc_port

TOOLS = ["lookup_fact", "word_count", "add", "big"]


def make_team(root: Path, server: str) -> Path:
    """``server`` is the front matter's lines of the demo server (after its name)."""
    shutil.copytree(DEFAULT_TEAMS_DIR / "default", root / "default")
    workers = root / "bench" / "workers"
    workers.mkdir(parents=True)
    (root / "bench" / "orchestrator.md").write_text("Plan.\n")
    (root / "bench" / "synthesizer.md").write_text("Merge.\n")
    allowed = ", ".join(f'"demo.{tool}"' for tool in TOOLS)
    (workers / "tooled.md").write_text(
        f"---\ndescription: uses tools\nmcp_servers:\n  - name: demo\n{server}tools: [{allowed}]\n"
        "max_turns: 4\ntool_timeout: 10\n---\nUse the tools.\n"
    )
    (workers / "plain.md").write_text("---\ndescription: no tools\n---\nAnswer.\n")
    return root


@contextmanager
def demo_server(journal: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "agentmesh.tools.demo_server", "--http", str(port), "--test-tools"]
    command += ["--journal", str(journal)]
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


async def execute(
    stub: worker_pb2_grpc.WorkerAsyncStub, agent: str, index: int
) -> tuple[float, common_pb2.SubtaskResult]:
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(
    stub: worker_pb2_grpc.WorkerAsyncStub, pid: int, agent: str, count: int, concurrent: bool
) -> tuple[float, list[tuple[float, common_pb2.SubtaskResult]]]:
    """(worker CPU seconds per subtask, each subtask's duration and result)."""
    before = cpu_s(pid)
    if concurrent:
        results = list(await asyncio.gather(*(execute(stub, agent, i) for i in range(count))))
    else:
        results = [await execute(stub, agent, i) for i in range(count)]
    return (cpu_s(pid) - before) / count, results


async def measure(port: int, pid: int, subtasks: int, rounds: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        for index in range(16):  # warm-up: connections, code paths
            await execute(stub, "tooled", index)
            await execute(stub, "plain", index)
        plain_cpu, plain = await timed(stub, pid, "plain", 200, concurrent=False)
        baseline = statistics.median(d for d, _ in plain)
        alone_cpu, alone = await timed(stub, pid, "tooled", 200, concurrent=False)
        fanned_cpu, fanned = [], []
        for _ in range(rounds):
            cpu, results = await timed(stub, pid, "tooled", subtasks, concurrent=True)
            fanned_cpu.append(cpu)
            fanned.extend(results)
        errors = 0
        for _, result in [*alone, *fanned]:
            errors += sum(call.outcome != "ok" for call in result.tool_calls) + (len(result.tool_calls) != len(TOOLS))
        return {
            "baseline_ms": baseline * 1000,
            "alone_subtask_ms": statistics.median(d for d, _ in alone) * 1000,
            "alone_overhead_ms": statistics.median(overhead_ms(d, baseline, r) for d, r in alone),
            "alone_cpu_ms": (alone_cpu - plain_cpu) * 1000,
            "fanout_subtask_ms": statistics.median(d for d, _ in fanned) * 1000,
            "fanout_overhead_ms": statistics.median(overhead_ms(d, baseline, r) for d, r in fanned),
            "fanout_cpu_ms": (statistics.median(fanned_cpu) - plain_cpu) * 1000,
            "tool_calls": float(sum(len(r.tool_calls) for _, r in [*alone, *fanned])),
            "errors": float(errors),
        }


@contextmanager
def worker_process(workdir: Path, teams: Path) -> Iterator[ServiceProcess]:
    env = {"TEAMS_DIR": str(teams), "GRPC_LISTEN": "127.0.0.1:0", "METRICS_PORT": str(free_port())}
    worker = spawn("worker", "worker_svc", env, workdir)
    try:
        wait_for_grpc_port(worker)
        yield worker
    finally:
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(15)


async def run(subtasks: int, rounds: int, transport: str) -> None:
    with tempfile.TemporaryDirectory() as workdir, ExitStack() as stack:
        journal = Path(workdir) / "journal.jsonl"
        if transport == "http":
            server = f"    url: {stack.enter_context(demo_server(journal))}\n"
        else:
            args = ["-m", "agentmesh.tools.demo_server", "--test-tools", "--journal", str(journal)]
            server = f"    command: python\n    args: {json.dumps(args)}\n"
        teams = make_team(Path(workdir) / "teams", server)
        with worker_process(Path(workdir), teams) as worker:
            figures = await measure(worker.port, worker.process.pid, subtasks, rounds)
        seen = sessions(journal)
    print(f"{subtasks} concurrent subtasks x {len(TOOLS)} tool calls, {rounds} rounds, one worker process, {transport}")
    print(f"  errors: {figures['errors']:.0f} of {figures['tool_calls']:.0f} tool calls")
    print(f"  MCP sessions the server saw: {seen} (goal: 1, one per worker process)")
    print(f"  a subtask without tools: {figures['baseline_ms']:.1f} ms (subtracted)")
    print(
        f"  one at a time: {figures['alone_subtask_ms']:.1f} ms per subtask; per tool turn "
        f"{figures['alone_overhead_ms']:.2f} ms of latency, {figures['alone_cpu_ms']:.2f} ms of worker CPU"
    )
    print(
        f"  {subtasks} at once: {figures['fanout_subtask_ms']:.1f} ms per subtask; per tool turn "
        f"{figures['fanout_overhead_ms']:.2f} ms of latency, {figures['fanout_cpu_ms']:.2f} ms of worker CPU "
        "(goal <= 5 ms)"
    )
    if figures["errors"] or seen != 1:
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subtasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transport", choices=["http", "stdio"], default="http", help="how the server is reached")
    args = parser.parse_args()
    asyncio.run(run(args.subtasks, args.rounds, args.transport))


if __name__ == "__main__":
    main()
