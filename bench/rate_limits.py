"""A fan-out against a rate-limited model API: failed subtasks, 429s and wall time, with and without its headers.

The fake Messages API allows ``--capacity`` requests at once, refilled at ``--refill`` a second (a token bucket),
and answers 429 with ``retry-after`` beyond it; with headers it also sends Anthropic's ``anthropic-ratelimit-*``.
One request through the whole mesh (four processes) plans ``--subtasks`` subtasks (the fake plans one per line);
every call of the run (the plan, each worker, the synthesis) draws on the same bucket. What the quota allows is the
time the bucket needs for all the calls that got through: (calls - capacity) / refill. Then the same fan-out at the
provider level (the pacing, retries and the real SDK, no mesh) against both fakes, Anthropic's and OpenAI's headers.

    .venv/bin/python -m bench.rate_limits [--subtasks 100] [--capacity 10] [--refill 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from agentmesh.llm.anthropic import AnthropicProvider
from agentmesh.llm.openai import OpenAIProvider
from agentmesh.llm.pacing import Pacers, PacingProvider
from agentmesh.llm.provider import Message, Prompt
from agentmesh.llm.retry import RetryingProvider, RetryPolicy
from bench._fake_model_mesh import API_KEY, MODEL, fake_model_mesh
from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_api import FakeAPI, FakeAPIProcess
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_rate_limit import RateLimit
from tests.support.processes import ProcessMesh


@dataclass(frozen=True)
class Outcome:
    case: str
    subtasks: int
    failed: int
    rate_limited: int
    calls: int
    wall_s: float
    quota_s: float

    def line(self) -> str:
        excess = f"{(self.wall_s / self.quota_s - 1) * 100:+.0f} %" if self.quota_s > 0 else "n/a"
        return (
            f"{self.case:<40} {self.subtasks:>8} {self.failed:>6} {self.rate_limited:>5} {self.calls:>5} "
            f"{self.wall_s:>7.2f} {self.quota_s:>7.2f} {excess:>7}"
        )


HEADER = (
    f"{'case':<40} {'subtasks':>8} {'failed':>6} {'429s':>5} {'calls':>5} {'wall s':>7} {'quota s':>7} {'excess':>7}"
)


def quota_s(calls: int, capacity: float, refill: float) -> float:
    return max(0.0, (calls - capacity) / refill)


def fan_out(mesh: ProcessMesh, subtasks: int) -> tuple[dict[str, Any], float]:
    """One request whose plan has ``subtasks`` subtasks; its usage and wall time."""
    lines = "\n".join(f"Summarise section {n} of the report" for n in range(1, subtasks + 1))
    started = time.perf_counter()
    response = httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": lines}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        timeout=180,
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return response.json()["usage"], elapsed


def mesh_case(args: argparse.Namespace, headers: bool, pacing: bool = True) -> Outcome:
    env = {
        "UPSTREAM_PACING": str(pacing).lower(),
        "MAX_SUBTASKS": "256",
        "ORCHESTRATOR_MAX_TOKENS": "16000",  # a plan of 256 subtasks written out is about 8,600 tokens
        "WORKER_COORDINATION_TIMEOUT": "120",
        "REQUEST_TIMEOUT": "170",
        "SYNTHESIS_TIMEOUT": "30",
        "WORKER_MAX_TOKENS": "256",
    }
    with fake_model_mesh(env=env) as (mesh, fake):
        limit(fake, args, headers)
        usage, wall_s = fan_out(mesh, args.subtasks)
        state = fake.state()
    calls = state["request_count"] - state["rate_limited"]
    return Outcome(
        f"mesh, {'with' if headers else 'without'} headers" + ("" if pacing else ", no pacing"),
        args.subtasks,
        len(usage["failed_subtasks"]),
        state["rate_limited"],
        calls,
        wall_s,
        quota_s(calls, args.capacity, args.refill),
    )


def limit(fake: FakeAPIProcess, args: argparse.Namespace, headers: bool) -> None:
    fake.rate_limit(args.capacity, args.refill, headers=headers)


async def provider_case(fake_class: type[FakeAPI], args: argparse.Namespace, headers: bool) -> Outcome:
    with fake_class(api_key=API_KEY) as fake:
        fake.set_rate_limit(RateLimit(args.capacity, args.refill, headers=headers))
        backend: AnthropicProvider | OpenAIProvider
        if fake_class is FakeAnthropic:
            backend = AnthropicProvider(api_key=API_KEY, base_url=fake.base_url)
        else:
            backend = OpenAIProvider(api_key=API_KEY, base_url=f"{fake.base_url}/v1")
        provider = RetryingProvider(PacingProvider(backend, Pacers(), backend.quota_scope), RetryPolicy())
        prompt = Prompt(model=MODEL, system="", messages=[Message("user", "Summarise a section")], max_tokens=256)
        started = time.perf_counter()
        calls = (provider.complete(prompt) for _ in range(args.subtasks))
        results = await asyncio.gather(*calls, return_exceptions=True)
        wall_s = time.perf_counter() - started
        await provider.aclose()
        state = fake.state()
    calls = state["request_count"] - state["rate_limited"]
    return Outcome(
        f"provider, {fake_class.name}, {'with' if headers else 'without'} headers",
        args.subtasks,
        sum(isinstance(result, BaseException) for result in results),
        state["rate_limited"],
        calls,
        wall_s,
        quota_s(calls, args.capacity, args.refill),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subtasks", type=int, default=100)
    parser.add_argument("--capacity", type=float, default=10, help="requests at once (the bucket's size)")
    parser.add_argument("--refill", type=float, default=10, help="requests a second")
    parser.add_argument("--skip-mesh", action="store_true", help="only the provider-level cases")
    args = parser.parse_args()
    print(HEADER, flush=True)
    if not args.skip_mesh:
        for headers in (True, False):
            print(mesh_case(args, headers).line(), flush=True)
        print(mesh_case(args, True, pacing=False).line(), flush=True)
    for fake_class in (FakeAnthropic, FakeOpenAI):
        for headers in (True, False):
            print(asyncio.run(provider_case(fake_class, args, headers)).line(), flush=True)


if __name__ == "__main__":
    main()
