"""What caching a run's shared prefix saves, and what warming it costs in latency.

Starts the fake Anthropic API (which caches prompts as the real one does: writes 1.25x, reads 0.1x, readable once
the writing response has begun) and two meshes on it, one with ``PROMPT_CACHE=false``. For each fan-out, one
request carrying a shared context of ``--context-tokens`` is planned (the fake planner is scripted) into that many
subtasks; printed: the workers' input cost with and without the cache, their ratio beside the arithmetic's
(1.25 + 0.1 (N - 1)) / N, whether the usage's cost_usd equals the fake's own pricing, and the median wall time
of ``--runs`` requests at ``--latency-ms`` of model latency (time to first token) with and without the cache.

    .venv/bin/python -m bench.prompt_cache [--fanouts 16,64] [--context-tokens 20000] [--latency-ms 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.fanout import API_KEY, Fanout, fanout_mesh, fanout_plan, run_fanout, shared_context
from tests.support.processes import ProcessMesh

REQUEST = "Review the policy below, one group of clauses per subtask."


def ideal_ratio(fanout: int) -> float:
    return (1.25 + 0.1 * (fanout - 1)) / fanout


def cost_line(fanout: int, cached: Fanout, uncached: Fanout) -> str:
    ratio = cached.worker_input_usd / uncached.worker_input_usd
    priced = all(abs(run.answer["usage"]["cost_usd"] - run.fake_cost_usd) < 1e-9 for run in (cached, uncached))
    (row,) = cached.workers
    written, read = row["cache_creation_input_tokens"], row["cache_read_input_tokens"]
    return (
        f"{fanout:>4}-way  workers' input ${uncached.worker_input_usd:.4f} uncached, ${cached.worker_input_usd:.4f} "
        f"cached: {ratio:.3f}x (arithmetic {ideal_ratio(fanout):.3f}x); cache write {written} tokens, reads {read}; "
        f"cost_usd = the fake's pricing: {priced}"
    )


def median_s(
    mesh: ProcessMesh, fake: FakeAnthropicProcess, content: str, fanout: int, latency_s: float, runs: int
) -> float:
    default = {"latency_s": latency_s}
    return statistics.median(run_fanout(mesh, fake, content, fanout_plan(fanout), default).seconds for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fanouts", default="16,64")
    parser.add_argument("--context-tokens", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    fanouts = [int(n) for n in args.fanouts.split(",")]
    content = f"{REQUEST}\n\n{shared_context(args.context_tokens)}"
    with spawn_fake_anthropic(api_key=API_KEY) as fake, tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "cached").mkdir()
        (Path(workdir) / "uncached").mkdir()
        with (
            fanout_mesh(Path(workdir) / "cached", fake) as cached,
            fanout_mesh(Path(workdir) / "uncached", fake, {"PROMPT_CACHE": "false"}) as uncached,
        ):
            print(f"shared context: {args.context_tokens} tokens; model claude-haiku-4-5 ($1/MTok input)")
            for fanout in fanouts:
                print(cost_line(fanout, run_fanout(cached, fake, content, fanout_plan(fanout)),
                                run_fanout(uncached, fake, content, fanout_plan(fanout))))  # fmt: skip
            latency_s = args.latency_ms / 1000
            for fanout in fanouts:
                with_cache = median_s(cached, fake, content, fanout, latency_s, args.runs)
                without = median_s(uncached, fake, content, fanout, latency_s, args.runs)
                print(
                    f"{fanout:>4}-way  wall time at {args.latency_ms} ms model latency: {without * 1000:.0f} ms "
                    f"uncached, {with_cache * 1000:.0f} ms cached (warming: {(with_cache - without) * 1000:+.0f} ms)"
                )


if __name__ == "__main__":
    main()
