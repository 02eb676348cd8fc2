"""Two gateway replicas on one redis-server (RESPONSES_STORE_URI): a background response started on one is polled,
resumed and cancelled from the other, a shutdown drains it to ``failed``, and its keys expire with the retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from gateway.openai.responses.redis_store import LEASE_RENEW_S, LEASE_S, PREFIX
from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    FakeOrchestrator,
    GatewayFactory,
    gateway_settings,
    play,
    serve_gateway,
    unused_target,
)
from tests.gateway.responses_support import check_response
from tests.support.redis_server import redis_server

RETENTION_S = 600


@pytest.fixture
def redis_uri(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as uri:
        yield uri


@pytest.fixture
async def redis_client(redis_uri: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_uri)
    yield client
    await client.aclose()


async def test_a_run_on_one_replica_is_polled_resumed_and_cancelled_from_the_other(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, redis_uri: str, redis_client: redis.Redis
) -> None:
    a = await start_gateway(responses_store_uri=redis_uri, response_retention=RETENTION_S)
    b = await start_gateway(responses_store_uri=redis_uri, response_retention=RETENTION_S)
    fake.script = play(HAPPY_RUN, wait_after=3)
    async with a.openai() as on_a, b.openai() as on_b:
        stream = await on_a.responses.create(model=MODEL, input="Say hello", background=True, stream=True)
        seen = []
        async for event in stream:
            seen.append(event)
            if event.type == "response.reasoning_summary_text.delta":
                break
        await stream.close()
        response_id = seen[0].response.id
        assert (await on_b.responses.retrieve(response_id)).status == "in_progress"
        resumed = await on_b.responses.retrieve(response_id, stream=True, starting_after=seen[-1].sequence_number)
        more = []
        async for event in resumed:
            more.append(event)
            if event.type == "response.reasoning_summary_text.delta":
                break  # the run is held by the fake: what is stored so far has come, in order
        await resumed.close()
        assert [e.sequence_number for e in seen + more] == list(range(len(seen) + len(more)))
        cancelled = await on_b.responses.cancel(response_id)
        await asyncio.wait_for(fake.cancelled.wait(), timeout=5)  # A's run was cancelled upstream
        read_on_a = await on_a.responses.retrieve(response_id)
        again = await on_a.responses.cancel(response_id)
    assert cancelled.status == read_on_a.status == again.status == "cancelled"
    check_response(read_on_a.model_dump(mode="json", exclude_unset=True))
    ttls = [await redis_client.pttl(f"{PREFIX}{response_id}"), await redis_client.pttl(f"{PREFIX}{response_id}:events")]
    assert all(0 < ttl <= RETENTION_S * 1000 for ttl in ttls)


async def test_a_completed_run_reads_the_same_on_both_replicas(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, redis_uri: str
) -> None:
    a = await start_gateway(responses_store_uri=redis_uri)
    b = await start_gateway(responses_store_uri=redis_uri)
    async with a.openai() as on_a, b.openai() as on_b:
        created = await on_a.responses.create(model=MODEL, input="Say hello", background=True)
        events = [event async for event in await on_b.responses.retrieve(created.id, stream=True)]
        done_b = await on_b.responses.retrieve(created.id)
        done_a = await on_a.responses.retrieve(created.id)
        follow_up = await on_b.responses.create(model=MODEL, input="More?", previous_response_id=created.id)
        await on_b.responses.delete(created.id)
        deleted = await on_a.responses.retrieve(follow_up.id)
    assert done_a.model_dump() == done_b.model_dump() and done_a.status == "completed"
    assert events[-1].type == "response.completed" and done_a.output_text == "Hello, world"
    assert [m.content for m in fake.requests[-1].messages] == ["Say hello", "Hello, world", "More?"]
    assert deleted.status == "completed"


async def test_a_shutdown_drains_background_runs_to_failed(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, redis_uri: str
) -> None:
    fake.script = play(HAPPY_RUN, wait_after=2)
    other = await start_gateway(responses_store_uri=redis_uri)
    settings = gateway_settings(other.settings.orchestrator_target, responses_store_uri=redis_uri,
                                shutdown_grace_period=0.5)  # fmt: skip
    async with serve_gateway(settings) as stopping, stopping.openai() as client:
        created = await client.responses.create(model=MODEL, input="Say hello", background=True)
        await fake.started.wait()
    async with other.openai() as client:
        failed = await client.responses.retrieve(created.id)
    assert failed.status == "failed" and failed.error is not None
    assert "shutting down" in failed.error.message


async def test_a_long_silent_foreground_response_is_not_taken_for_a_dead_replicas(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, redis_uri: str
) -> None:
    a = await start_gateway(responses_store_uri=redis_uri)
    b = await start_gateway(responses_store_uri=redis_uri)
    fake.script = play(HAPPY_RUN, wait_after=1)  # silent after the plan, as while workers run
    async with a.openai() as on_a, b.openai() as on_b:
        answering = asyncio.create_task(on_a.responses.create(model=MODEL, input="Say hello"))
        await fake.started.wait()
        async with a.http() as http:  # the run history names the response while it runs
            (listed,) = [run["id"] for run in (await http.get("/v1/runs")).json()["data"]]
        # Longer than a lease with its renewal: a replica that stopped renewing would be taken for dead by now.
        until = asyncio.get_running_loop().time() + LEASE_S + LEASE_RENEW_S + 1
        while asyncio.get_running_loop().time() < until:
            assert (await on_b.responses.retrieve(listed)).status == "in_progress"
            await asyncio.sleep(0.5)
        fake.release.set()
        done = await answering
    assert done.status == "completed" and done.id == listed


@pytest.mark.parametrize("background", [True, False])
async def test_an_unreachable_store_is_a_503_and_the_run_is_cancelled(
    start_gateway: GatewayFactory, fake: FakeOrchestrator, background: bool
) -> None:
    gateway = await start_gateway(responses_store_uri=f"redis://{unused_target()}")
    fake.script = play(HAPPY_RUN, wait_after=1)
    async with gateway.http() as client:
        response = await client.post("/v1/responses", json={"model": MODEL, "input": "hi", "background": background})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "response_store_unavailable"
    if not background:  # the run had started: it is cancelled, not left running
        await asyncio.wait_for(fake.cancelled.wait(), timeout=5)
