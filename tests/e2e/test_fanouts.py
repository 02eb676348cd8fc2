"""Big fan-outs through the whole mesh on the fake Anthropic API: a cached shared context, routed documents."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from agentmesh.shared_prefix import shared_prefix
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.fanout import (
    API_KEY,
    CHARS_PER_TOKEN,
    chat,
    document,
    fanout_mesh,
    fanout_plan,
    file_part,
    run_fanout,
    shared_context,
    usage_usd,
)
from tests.support.processes import ProcessMesh

pytestmark = pytest.mark.e2e

REQUEST = "Review the policy below, one group of clauses per subtask."
CONTEXT_TOKENS = 20_000


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropicProcess) -> Iterator[ProcessMesh]:
    with fanout_mesh(tmp_path_factory.mktemp("cached"), fake) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def uncached(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropicProcess) -> Iterator[ProcessMesh]:
    with fanout_mesh(tmp_path_factory.mktemp("uncached"), fake, {"PROMPT_CACHE": "false"}) as mesh:
        yield mesh


# (1.25 + 0.1 (N - 1)) / N of the shared part: 0.17 at 16, 0.12 at 64; each subtask's own part comes on top.
@pytest.mark.parametrize(("fanout", "most"), [(16, 0.30), (64, 0.20)])
def test_a_fan_out_over_a_shared_context_pays_a_fraction_of_its_input_cost(
    cached: ProcessMesh, uncached: ProcessMesh, fake: FakeAnthropicProcess, fanout: int, most: float
) -> None:
    content = f"{REQUEST}\n\n{shared_context(CONTEXT_TOKENS)}"
    with_cache = run_fanout(cached, fake, content, fanout_plan(fanout))
    without = run_fanout(uncached, fake, content, fanout_plan(fanout))

    assert with_cache.worker_input_usd <= most * without.worker_input_usd
    # Warmed: one call wrote the prefix, every other one read it.
    written = [r["usage"]["cache_creation_input_tokens"] for r in with_cache.worker_requests]
    read = [r["usage"]["cache_read_input_tokens"] for r in with_cache.worker_requests]
    assert sum(1 for tokens in written if tokens) == 1
    assert sum(1 for tokens in read if tokens >= CONTEXT_TOKENS) == fanout - 1
    # PROMPT_CACHE=false changes nothing: no breakpoint is sent, nothing is cached.
    assert not any("cache_control" in str(r["body"]) for r in without.worker_requests)
    (row,) = without.workers
    assert (row["calls"], row["cache_creation_input_tokens"], row["cache_read_input_tokens"]) == (fanout, 0, 0)


def test_the_usage_prices_cache_writes_and_reads_as_the_fake_counted_them(
    cached: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    run = run_fanout(cached, fake, f"{REQUEST}\n\n{shared_context(CONTEXT_TOKENS)}", fanout_plan(16))
    (row,) = run.workers
    assert row["cache_creation_input_tokens"] > 0 and row["cache_read_input_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(sum(usage_usd(r["usage"]) for r in run.worker_requests), rel=1e-9)
    assert run.answer["usage"]["cost_usd"] == pytest.approx(run.fake_cost_usd, rel=1e-9)


def test_each_worker_receives_its_own_document_and_none_of_the_others(
    cached: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    request = "Summarise each contract's termination terms."
    documents = [document(number, 2_000) for number in range(1, 41)]
    content = [{"type": "text", "text": request}, *(file_part(name, text) for name, text in documents)]
    plan = {"subtasks": [], "map": [{"id": "m1", "title": "Summarise", "instruction": "Summarise its termination"}]}

    run = run_fanout(cached, fake, content, plan)

    assert len(run.worker_requests) == 40
    for worker in run.worker_requests:
        message = worker["body"]["messages"][-1]["content"]
        subtask = re.match(r"Subtask m1-D(\d+):", message)
        assert subtask is not None, message[:80]
        assert set(re.findall(r"Contract (\d{3}):", message)) == {f"{int(subtask[1]):03d}"}
    documents_tokens = sum(len(text) for _, text in documents) // CHARS_PER_TOKEN
    prefix_tokens = len(shared_prefix(request)) // CHARS_PER_TOKEN
    assert run.worker_input_tokens <= 1.5 * documents_tokens + 40 * prefix_tokens


def test_a_writer_that_fails_lets_the_other_workers_go_on(cached: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")
    fake.script({"tool_input": fanout_plan(4)}, {"status": 400, "match_text": "^Subtask t1:"})
    answer, _ = chat(cached, f"{REQUEST}\n\n{shared_context(CONTEXT_TOKENS)}")

    assert [(s["id"], s["outcome"]) for s in answer["usage"]["failed_subtasks"]] == [("t1", "failed")]
    (row,) = [r for r in answer["usage"]["agents"] if r["agent"] == "worker"]
    assert row["calls"] == 3  # they were not left waiting for a prefix nobody wrote
    assert row["cache_creation_input_tokens"] + row["cache_read_input_tokens"] >= 3 * CONTEXT_TOKENS


def test_under_a_cost_cap_the_cached_prefix_is_reserved_as_written_and_the_run_fits(
    cached: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.control("POST", "reset")
    fake.script({"tool_input": fanout_plan(16)})
    answer, _ = chat(cached, f"{REQUEST}\n\n{shared_context(CONTEXT_TOKENS)}", max_cost_usd=2.0)

    usage = answer["usage"]
    assert usage["failed_subtasks"] == []
    assert usage["cost_usd"] <= usage["max_cost_usd"] == 2.0
    (row,) = [r for r in usage["agents"] if r["agent"] == "worker"]
    assert row["cache_read_input_tokens"] >= 15 * CONTEXT_TOKENS
