"""The scheduler: independent subtasks run together, dependents wait for their inputs, failures are contained."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2
from orchestrator_svc.scheduler import CoordinationTimeout, Scheduler, SubtaskFailed


def _subtask(sid: str, *deps: str) -> common_pb2.Subtask:
    return common_pb2.Subtask(id=sid, title=sid, instruction=f"do {sid}", depends_on=list(deps))


class Recorder:
    """An execute function whose calls block until the test releases them."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.release: dict[str, asyncio.Event] = {}
        self.inputs: dict[str, list[str]] = {}
        self.cancelled: set[str] = set()
        self.entered: dict[str, asyncio.Event] = {}

    async def wait_entered(self, *ids: str) -> None:
        for sid in ids:
            await asyncio.wait_for(self.entered.setdefault(sid, asyncio.Event()).wait(), timeout=5)

    async def __call__(
        self, subtask: common_pb2.Subtask, deps: list[common_pb2.SubtaskResult]
    ) -> common_pb2.SubtaskResult:
        self.inputs[subtask.id] = [d.output for d in deps]
        self.entered.setdefault(subtask.id, asyncio.Event()).set()
        event = self.release.setdefault(subtask.id, asyncio.Event())
        try:
            await event.wait()
        except asyncio.CancelledError:
            self.cancelled.add(subtask.id)
            raise
        if subtask.id in self.fail:
            raise SubtaskFailed(f"{subtask.id} broke", "UNAVAILABLE")
        return common_pb2.SubtaskResult(subtask_id=subtask.id, output=f"out-{subtask.id}")


def _kind(event: orchestrator_pb2.RunEvent) -> tuple[str, str]:
    kind = event.WhichOneof("event")
    assert kind is not None
    return kind, getattr(event, kind).subtask_id


async def _collect(scheduler: Scheduler, recorder: Recorder, release_order: list[str]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async with contextlib.aclosing(scheduler.run(timeout_s=30)) as events:
        async for event in events:
            seen.append(_kind(event))
            # Release the next subtask once everything currently runnable has started.
            started = {sid for kind, sid in seen if kind == "subtask_started"}
            finished = {sid for kind, sid in seen if kind == "subtask_finished"}
            for sid in release_order:
                if sid in started and sid not in finished:
                    recorder.release.setdefault(sid, asyncio.Event()).set()
                    break
    return seen


async def test_independent_subtasks_all_start_before_any_finishes() -> None:
    recorder = Recorder()
    scheduler = Scheduler([_subtask("a"), _subtask("b"), _subtask("c")], recorder)
    seen = await _collect(scheduler, recorder, ["a", "b", "c"])
    assert seen[:3] == [("subtask_started", "a"), ("subtask_started", "b"), ("subtask_started", "c")]
    assert sorted(scheduler.results) == ["a", "b", "c"]


async def test_a_dependent_starts_only_after_its_inputs_and_receives_them() -> None:
    recorder = Recorder()
    scheduler = Scheduler([_subtask("a"), _subtask("b"), _subtask("c", "a", "b")], recorder)
    seen = await _collect(scheduler, recorder, ["a", "b", "c"])
    assert seen.index(("subtask_started", "c")) > max(
        seen.index(("subtask_finished", "a")), seen.index(("subtask_finished", "b"))
    )
    assert recorder.inputs["c"] == ["out-a", "out-b"]


async def test_a_failure_skips_its_dependents_and_the_rest_go_on() -> None:
    recorder = Recorder(fail={"a"})
    scheduler = Scheduler([_subtask("a"), _subtask("b"), _subtask("c", "a")], recorder)
    await _collect(scheduler, recorder, ["a", "b"])
    assert scheduler.results["b"].output == "out-b"
    assert scheduler.results["a"].error == "a broke"
    assert scheduler.results["c"].outcome == common_pb2.SUBTASK_OUTCOME_SKIPPED
    assert "skipped because a did not succeed" in scheduler.results["c"].error
    assert "c" not in recorder.inputs


async def test_fail_fast_raises_and_cancels_what_is_still_running() -> None:
    recorder = Recorder(fail={"a"})
    scheduler = Scheduler([_subtask("a"), _subtask("b")], recorder, fail_fast=True)
    with pytest.raises(SubtaskFailed, match="a broke"):
        await _collect(scheduler, recorder, ["a"])
    assert recorder.cancelled == {"b"}


async def test_coordination_timeout_names_the_phase_and_cancels_the_work() -> None:
    recorder = Recorder()
    scheduler = Scheduler([_subtask("a"), _subtask("b")], recorder)
    with pytest.raises(CoordinationTimeout, match=r"worker coordination timed out after 0\.05 s with 2 of 2"):
        async for _ in scheduler.run(timeout_s=0.05):
            pass
    assert recorder.cancelled == {"a", "b"}


async def test_closing_the_stream_cancels_running_subtasks() -> None:
    recorder = Recorder()
    scheduler = Scheduler([_subtask("a"), _subtask("b")], recorder)
    events = scheduler.run(timeout_s=30)
    await anext(events)
    await anext(events)
    await recorder.wait_entered("a", "b")
    await events.aclose()
    assert recorder.cancelled == {"a", "b"}


async def test_left_out_subtasks_end_over_budget_first_and_their_dependents_are_skipped() -> None:
    recorder = Recorder()
    subtasks = [_subtask("a"), _subtask("b"), _subtask("c", "b")]
    scheduler = Scheduler(subtasks, recorder, left_out={"b": "left out: the cost cap covers 1 of 3 subtasks"})
    recorder.release.setdefault("a", asyncio.Event()).set()
    async with contextlib.aclosing(scheduler.run(timeout_s=30)) as events:
        seen = [event async for event in events]
    assert [_kind(e) for e in seen[:2]] == [("subtask_finished", "b"), ("subtask_finished", "c")]
    assert seen[0].subtask_finished.outcome == common_pb2.SUBTASK_OUTCOME_OVER_BUDGET
    assert "cost cap" in seen[0].subtask_finished.error
    assert seen[1].subtask_finished.outcome == common_pb2.SUBTASK_OUTCOME_SKIPPED
    assert set(recorder.inputs) == {"a"}
    assert scheduler.results["a"].outcome == common_pb2.SUBTASK_OUTCOME_OK
