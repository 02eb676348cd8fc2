"""10,000 ended responses in the in-process store: the memory they hold, measured, and the bound the docs state."""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from gateway.openai.responses.protocol import ResponseRequest
from gateway.openai.responses.store import MemoryResponseStore
from gateway.openai.responses.translate import ResponseEvents, response_object
from tests.unit.test_response_store import RETENTION_S, Clock, run_events

STORED = 10_000
# The bound docs/responses.md states for 10,000 ended responses of the typical run below.
MAX_BYTES = 50 * 1024 * 1024


def retained_bytes(root: object) -> int:
    """Every object reachable from ``root`` (sizes as ``sys.getsizeof`` gives them), each counted once; classes,
    functions and modules are shared and left out."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    skipped = (type, type(sys), type(retained_bytes))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skipped):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def one_run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    request = ResponseRequest(model="agentmesh", input="What is the question?", background=True)
    builder = ResponseEvents(response_object(f"resp_{0:032x}", int(time.time()), "agentmesh", request, 0.0), True)
    start = builder.start()
    batch: list[dict[str, Any]] = []
    for event in run_events():
        batch += builder.on_event(event)
    batch += builder.finish()
    return start, batch, builder.response


async def test_ten_thousand_ended_responses_stay_within_the_stated_memory() -> None:
    store = MemoryResponseStore(RETENTION_S, Clock())
    start, batch, final = one_run()
    for index in range(STORED):
        response_id = f"resp_{index:032x}"
        await store.create(f"user-{index % 50}", {**start[0]["response"], "id": response_id}, start)
        assert await store.append(response_id, batch, ended={**final, "id": response_id}, turns=[("user", "q")])
    held = retained_bytes(store)
    assert len(store) == STORED
    print(f"\n{STORED} ended responses hold {held / 1e6:.1f} MB")  # the figure docs/responses.md states
    assert held < MAX_BYTES
    kept = await store.get("user-0", f"resp_{0:032x}")
    assert kept is not None and kept.status == "completed"
    assert len([event async for event in store.events("user-0", f"resp_{0:032x}", -1)]) == len(start) + len(batch)
