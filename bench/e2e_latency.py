"""End-to-end latency through the gateway for 1, 8 and 32 subtasks, against the ideal.

Starts all four services as processes with the offline model at OFFLINE_LATENCY_MS (default 500),
streams each request with the openai SDK, and prints the median of a few runs next to the ideal
plan + slowest worker + synthesis (3 x latency) and the serial sum ((N + 2) x latency).

    .venv/bin/python -m bench.e2e_latency [--latency-ms 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import openai

from tests.e2e.conftest import mint_token
from tests.support.processes import process_mesh


def _one_request(client: openai.OpenAI, subtasks: int) -> float:
    prompt = "\n".join(f"research topic {i}" for i in range(subtasks))
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": prompt}], stream=True
    )
    for _ in stream:
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--subtasks", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    env = {"OFFLINE_LATENCY_MS": str(args.latency_ms), "MAX_SUBTASKS": str(max(args.subtasks))}
    with tempfile.TemporaryDirectory() as workdir, process_mesh(Path(workdir), env=env) as mesh:
        client = openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key=mint_token(mesh.jwt_secret), max_retries=0)
        _one_request(client, 1)  # warm-up: first connections, imports
        print(f"latency per model call: {args.latency_ms} ms; median of {args.runs} runs")
        print(f"{'subtasks':>8} {'measured s':>11} {'ideal s':>8} {'overhead ms':>12} {'serial s':>9}")
        for n in args.subtasks:
            measured = statistics.median(_one_request(client, n) for _ in range(args.runs))
            ideal = 3 * latency
            overhead_ms = (measured - ideal) * 1000
            print(f"{n:>8} {measured:>11.3f} {ideal:>8.3f} {overhead_ms:>12.0f} {(n + 2) * latency:>9.1f}")


if __name__ == "__main__":
    main()
