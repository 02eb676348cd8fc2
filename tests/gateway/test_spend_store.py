"""The daily spend stores, in memory and in a real redis-server: reserve atomically, settle, roll off after a day."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.spend import store as spend_store
from gateway.spend.store import RETRY_WHILE_HELD_S, WINDOW_BUCKETS, MemorySpendStore, RedisSpendStore, SpendStore
from tests.support.redis_server import redis_server


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SpendStore]:
    if request.param == "memory":
        yield MemorySpendStore()
        return
    with redis_server(tmp_path) as uri:
        redis_store = RedisSpendStore(uri)
        try:
            yield redis_store
        finally:
            await redis_store.aclose()


async def test_reservations_never_exceed_the_limit_and_settle_to_the_cost(store: SpendStore) -> None:
    holds = await asyncio.gather(*(store.reserve("alice", 0.3, 1.0) for _ in range(5)))
    assert sorted(h.reserved_usd for h in holds) == pytest.approx([0.0, 0.1, 0.3, 0.3, 0.3])
    refused = next(h for h in holds if h.reserved_usd == 0)
    assert refused.retry_after_s == RETRY_WHILE_HELD_S  # held by runs in flight, not spent
    for hold in holds:
        if hold.reserved_usd:
            await store.settle(hold, hold.reserved_usd / 2)
    again = await store.reserve("alice", 1.0, 1.0)
    assert again.reserved_usd == pytest.approx(0.5)
    assert (await store.reserve("bob", 1.0, 1.0)).reserved_usd == pytest.approx(1.0)
    await store.settle(again, 0.5)
    spent = await store.reserve("alice", 1.0, 1.0)
    assert spent.reserved_usd == 0
    assert 24 * 3600 - 120 < spent.retry_after_s <= 24 * 3600 + 60  # nothing held: the oldest spending must go


async def test_spending_older_than_a_day_no_longer_counts(store: SpendStore, monkeypatch: pytest.MonkeyPatch) -> None:
    now = spend_store._now_bucket()
    monkeypatch.setattr(spend_store, "_now_bucket", lambda: now - WINDOW_BUCKETS - 1)
    old = await store.reserve("alice", 1.0, 1.0)
    await store.settle(old, 1.0)
    monkeypatch.setattr(spend_store, "_now_bucket", lambda: now - WINDOW_BUCKETS)
    assert (await store.reserve("alice", 1.0, 1.0)).reserved_usd == 0  # exactly a day (and a minute) ago: still counted
    monkeypatch.setattr(spend_store, "_now_bucket", lambda: now)
    assert (await store.reserve("alice", 0.5, 1.0)).reserved_usd == pytest.approx(0.5)
