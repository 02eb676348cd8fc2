"""The in-process response store: bounded by RESPONSE_RETENTION and by what its events weigh; subjects kept apart."""

from __future__ import annotations

from typing import Any

from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.openai.responses.protocol import ResponseRequest
from gateway.openai.responses.store import MemoryResponseStore
from gateway.openai.responses.translate import ResponseEvents, response_object

RETENTION_S = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_events() -> list[orchestrator_pb2.RunEvent]:
    """A typical run: a plan of three subtasks, their progress, and an answer of about 2,000 characters in 100
    deltas, then the usage."""
    subtasks = [common_pb2.Subtask(id=f"t{n}", title=f"Look into part {n} of the question") for n in (1, 2, 3)]
    events = [orchestrator_pb2.RunEvent(plan=orchestrator_pb2.Plan(subtasks=subtasks))]
    for subtask in subtasks:
        events.append(orchestrator_pb2.RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id=subtask.id)))
        finished = orchestrator_pb2.SubtaskFinished(subtask_id=subtask.id, duration_ms=1500)
        events.append(orchestrator_pb2.RunEvent(subtask_finished=finished))
    events += [orchestrator_pb2.RunEvent(text_delta="twenty chars of text") for _ in range(100)]
    usage = common_pb2.Usage(agent="worker", model="small", input_tokens=900, output_tokens=300, priced=True)
    summary = orchestrator_pb2.UsageSummary(by_agent=[usage], input_tokens=900, output_tokens=300, fully_priced=True)
    return [*events, orchestrator_pb2.RunEvent(usage=summary)]


async def store_one(store: MemoryResponseStore, subject: str, index: int) -> dict[str, Any]:
    request = ResponseRequest(model="agentmesh", input="What is the question?", background=True)
    builder = ResponseEvents(response_object(f"resp_{index:032x}", 0, "agentmesh", request, 0.0), True)
    await store.create(subject, builder.response, builder.start())
    batch: list[dict[str, Any]] = []
    for event in run_events():
        batch += builder.on_event(event)
    batch += builder.finish()
    assert await store.append(builder.response["id"], batch, ended=builder.response, turns=[("user", "q")])
    return builder.response


async def test_ended_responses_expire_after_the_retention() -> None:
    clock = Clock()
    store = MemoryResponseStore(RETENTION_S, clock)
    first = await store_one(store, "alice", 1)
    clock.now += RETENTION_S / 2
    second = await store_one(store, "alice", 2)
    clock.now += RETENTION_S / 2 + 1  # the first ended more than RETENTION_S ago, the second not
    assert await store.get("alice", first["id"]) is None
    kept = await store.get("alice", second["id"])
    assert kept is not None and kept.status == "completed"
    assert [e async for e in store.events("alice", first["id"], -1)] == []
    clock.now += RETENTION_S
    assert len(store) == 0


async def test_a_running_response_is_kept_however_long_it_runs() -> None:
    clock = Clock()
    store = MemoryResponseStore(RETENTION_S, clock)
    request = ResponseRequest(model="agentmesh", input="hi", background=True)
    builder = ResponseEvents(response_object("resp_running", 0, "agentmesh", request, 0.0), True)
    await store.create("alice", builder.response, builder.start())
    clock.now += 10 * RETENTION_S
    assert (await store.get("alice", "resp_running")) is not None


async def test_only_the_owner_sees_a_response() -> None:
    store = MemoryResponseStore(RETENTION_S, Clock())
    response = await store_one(store, "alice", 1)
    assert await store.get("mallory", response["id"]) is None
    assert await store.cancel("mallory", response["id"]) is None
    assert not await store.delete("mallory", response["id"])
    assert [e async for e in store.events("mallory", response["id"], -1)] == []
    assert await store.get("alice", response["id"]) is not None


async def test_replay_after_n_gives_exactly_the_later_events() -> None:
    store = MemoryResponseStore(RETENTION_S, Clock())
    response = await store_one(store, "alice", 1)
    every = [e async for e in store.events("alice", response["id"], -1)]
    after = [e async for e in store.events("alice", response["id"], 10)]
    assert after == every[11:] and len(every) > 20
