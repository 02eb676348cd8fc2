"""What a fault costs a user: extra latency of a retried 529, of giving up, of an open breaker, of cancelling.

Starts the fake Anthropic API and the four services as processes (the real SDK path), sends one-subtask
requests through the gateway, and prints the median and mean of each case, and their excess over a healthy request.
Retries use the configured defaults (RETRY_EXPONENTIAL_MULTIPLIER 0.5 s: the first retry waits a random
0-0.5 s, the second 0-1 s) unless the case says "no backoff".

    .venv/bin/python -m bench.fault_cost [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from agentmesh.settings import DEFAULT_ORCHESTRATOR_MODEL
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

API_KEY = "sk-ant-bench-fault-cost-0123456789"
PLANNING = {"match_model": DEFAULT_ORCHESTRATOR_MODEL}
WORKER = {"match_text": "^Subtask "}


@contextmanager
def mesh_on(fake: FakeAnthropicProcess, workdir: Path, **env: str) -> Iterator[ProcessMesh]:
    workdir.mkdir()
    anthropic = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    with process_mesh(workdir, env={**anthropic, **env}) as mesh:
        yield mesh


def request_s(mesh: ProcessMesh, expect: int = 200) -> float:
    started = time.perf_counter()
    response = httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": "Describe Paris"}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == expect, response.text
    return elapsed


def disconnect_s(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> float:
    """From the client closing its stream to the last upstream request of the run being closed."""
    fake.script({"latency_s": 60, **WORKER})
    with httpx.stream(
        "POST",
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "stream": True, "messages": [{"role": "user", "content": "Describe Paris"}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        timeout=60,
    ) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        fake.wait_for_state(in_flight=1, within_s=10)
    closed = time.perf_counter()
    fake.wait_for_state(in_flight=0, within_s=10)
    return time.perf_counter() - closed


def timed_ms(runs: int, fake: FakeAnthropicProcess, case: Callable[[], float]) -> tuple[float, float]:
    """Median and mean: the backoff is random (full jitter), so the two tell different things."""
    samples = []
    for _ in range(runs):
        fake.control("POST", "reset")
        samples.append(case() * 1000)
    return statistics.median(samples), statistics.mean(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, tuple[float, float]]] = []

    def scripted(
        mesh: ProcessMesh, fake: FakeAnthropicProcess, *behaviours: dict[str, object], expect: int = 200
    ) -> Callable[[], float]:
        def case() -> float:
            if behaviours:
                fake.script(*behaviours)
            return request_s(mesh, expect)

        return case

    with tempfile.TemporaryDirectory() as workdir, spawn_fake_anthropic(api_key=API_KEY) as fake:
        with mesh_on(fake, Path(workdir) / "defaults", CIRCUIT_BREAKER_FAILURE_THRESHOLD="1000") as mesh:
            request_s(mesh)  # warm-up: connections, imports
            healthy = timed_ms(args.runs, fake, scripted(mesh, fake))
            rows.append(("healthy request (plan, one worker, synthesis)", healthy))
            for label, behaviour in (("planning", PLANNING), ("worker", WORKER)):
                case = scripted(mesh, fake, {"status": 529, **behaviour})
                rows.append((f"one 529 on the {label} call, retried", timed_ms(args.runs, fake, case)))
            case = scripted(mesh, fake, {"status": 529, "times": 3, **PLANNING}, expect=429)
            rows.append(("planning 529 x3: retries run out, 429", timed_ms(args.runs, fake, case)))
            cancelled = timed_ms(args.runs, fake, lambda: disconnect_s(mesh, fake))
        no_backoff = {"RETRY_EXPONENTIAL_MULTIPLIER": "0.001", "RETRY_EXPONENTIAL_MAX": "0.001"}
        with mesh_on(fake, Path(workdir) / "no-backoff", **no_backoff, CIRCUIT_BREAKER_FAILURE_THRESHOLD="1") as mesh:
            request_s(mesh)
            case = scripted(mesh, fake, {"status": 529, **PLANNING})
            rows.append(("one 529 on the planning call, retried, no backoff", timed_ms(args.runs, fake, case)))
            fake.script({"status": 529, "times": 3, **PLANNING})
            request_s(mesh, expect=429)  # opens the planning model's breaker (threshold 1)
            case = scripted(mesh, fake, expect=503)
            rows.append(("planning model's breaker open: 503 at once", timed_ms(args.runs, fake, case)))

    print(f"{args.runs} runs each; the fake API answers at once, so the figures are the mesh's own (ms)")
    print(f"{'case':<52} {'median':>7} {'mean':>7} {'+median':>8} {'+mean':>7}")
    for label, (median, mean) in rows:
        print(f"{label:<52} {median:>7.0f} {mean:>7.0f} {median - healthy[0]:>+8.0f} {mean - healthy[1]:>+7.0f}")
    label = "client disconnects: until no upstream request is open"
    print(f"{label:<52} {cancelled[0]:>7.0f} {cancelled[1]:>7.0f}")


if __name__ == "__main__":
    main()
