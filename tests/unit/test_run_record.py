"""Run records: the timeline read off a run's events, how a run ends, and the bounded per-subject history."""

from __future__ import annotations

import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.edge.identity import subject_key
from gateway.runs.history import RunHistory
from gateway.runs.record import RunRecord

RunEvent = orchestrator_pb2.RunEvent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: int) -> None:
        self.now += ms / 1000


def _plan(*subtasks: tuple[str, list[str]], fallback_reason: str = "") -> RunEvent:
    return RunEvent(
        plan=orchestrator_pb2.Plan(
            subtasks=[
                common_pb2.Subtask(id=sid, title=f"title {sid}", instruction=f"do {sid}", depends_on=deps)
                for sid, deps in subtasks
            ],
            fallback=bool(fallback_reason),
            fallback_reason=fallback_reason,
            usage=common_pb2.Usage(agent="orchestrator", model="big", input_tokens=10, cost_usd=0.01, priced=True),
        )
    )


def _started(sid: str) -> RunEvent:
    return RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id=sid))


def _finished(sid: str, outcome: int = common_pb2.SUBTASK_OUTCOME_OK, error: str = "") -> RunEvent:
    usage = common_pb2.Usage(agent="worker", model="small", output_tokens=5, cost_usd=0.001, priced=True)
    return RunEvent(
        subtask_finished=orchestrator_pb2.SubtaskFinished(
            subtask_id=sid,
            outcome=outcome,  # type: ignore[arg-type]
            error=error,
            usage=usage if not error else None,
        )
    )


def _record(clock: Clock, subject: str = "alice") -> RunRecord:
    return RunRecord("chatcmpl-1", "req-1", subject_key(subject), stream=True, clock=clock)


def test_a_run_is_a_timeline_of_its_events_in_ms_from_its_start() -> None:
    clock = Clock()
    record = _record(clock)
    clock.advance_ms(40)
    record.observe(_plan(("t1", []), ("t2", []), ("t3", ["t1"])))
    record.observe(_started("t1"))
    record.observe(_started("t2"))
    clock.advance_ms(100)
    record.observe(_finished("t1"))
    record.observe(_started("t3"))
    clock.advance_ms(50)
    record.observe(_finished("t2", common_pb2.SUBTASK_OUTCOME_FAILED, "UNAVAILABLE: worker down"))
    clock.advance_ms(10)
    record.observe(_finished("t3"))
    clock.advance_ms(200)
    record.finish("ok")
    clock.advance_ms(999)  # a finished run's times no longer move

    view = record.view()
    assert view.status == "ok" and view.error is None and view.duration_ms == 400
    timeline = {s.id: (s.started_ms, s.finished_ms, s.outcome, s.error) for s in view.subtasks}
    assert timeline == {
        "t1": (40, 140, "ok", None),
        "t2": (40, 190, "failed", "UNAVAILABLE: worker down"),
        "t3": (140, 200, "ok", None),
    }
    assert view.subtasks[2].depends_on == ["t1"] and view.subtasks[2].instruction == "do t3"
    phases = {name: (p.started_ms, p.finished_ms) for name, p in view.phases.items()}
    assert phases == {"planning": (0, 40), "coordination": (40, 200), "synthesis": (200, 400)}
    assert view.plan is not None and not view.plan.fallback
    # Without the run's summary, what its calls cost so far; the failed subtask is named in the usage.
    assert view.usage is not None and view.usage.cost_usd == pytest.approx(0.012)
    assert [a.agent for a in view.usage.agents] == ["orchestrator", "worker"]
    assert [(f.id, f.outcome) for f in view.usage.failed_subtasks] == [("t2", "failed")]
    assert view.subject == subject_key("alice") != "alice"


def test_subtasks_in_progress_pending_and_skipped() -> None:
    clock = Clock()
    record = _record(clock)
    record.observe(_plan(("t1", []), ("t2", ["t1"]), ("t3", [])))
    record.observe(_started("t1"))
    clock.advance_ms(30)
    record.observe(_finished("t3", common_pb2.SUBTASK_OUTCOME_SKIPPED, "skipped because t0 did not succeed"))
    outcomes = {s.id: (s.outcome, s.started_ms, s.finished_ms) for s in record.view().subtasks}
    # A skipped subtask never started: it sits where the run gave up on it.
    assert outcomes == {"t1": ("running", 0, None), "t2": ("pending", None, None), "t3": ("skipped", 30, 30)}
    view = record.view()
    assert view.status == "in_progress" and view.duration_ms == 30
    assert view.phases["coordination"].finished_ms is None and "synthesis" not in view.phases


@pytest.mark.parametrize(
    ("events", "phase"),
    [
        ([], "planning"),
        ([_plan(("t1", [])), _started("t1")], "coordination"),
        ([_plan(("t1", [])), _finished("t1")], "synthesis"),
    ],
)
def test_a_failed_run_names_the_phase_it_was_in(events: list[RunEvent], phase: str) -> None:
    record = _record(Clock())
    for event in events:
        record.observe(event)
    record.finish("DEADLINE_EXCEEDED", "it took too long")
    record.finish("ok")  # once only
    assert record.view().error is not None
    error = record.view().error
    assert error is not None and (error.phase, error.code, error.message) == (
        phase,
        "deadline_exceeded",
        "it took too long",
    )
    assert record.view().status == "error"


def test_a_run_that_ends_early_leaves_its_subtasks_cancelled_or_not_run() -> None:
    clock = Clock()
    record = _record(clock)
    record.observe(_plan(("t1", []), ("t2", ["t1"]), fallback_reason="the planner gave no plan"))
    record.observe(_started("t1"))
    clock.advance_ms(70)
    record.finish("cancelled", "the client closed the stream")
    view = record.view()
    assert {s.id: (s.outcome, s.finished_ms) for s in view.subtasks} == {"t1": ("cancelled", 70), "t2": ("not_run", 70)}
    assert view.plan is not None and view.plan.fallback and view.plan.fallback_reason == "the planner gave no plan"
    assert view.phases["coordination"].finished_ms == 70


def test_the_history_keeps_the_newest_runs_of_each_subject_apart() -> None:
    history = RunHistory(size=3)
    for index, subject in enumerate(["alice", "bob", "alice", "alice"]):
        history.start(f"chatcmpl-{index}", f"req-{index}", subject, stream=False)
    assert [r.id for r in history.of("alice")] == ["chatcmpl-3", "chatcmpl-2"]  # chatcmpl-0 was dropped
    assert [r.id for r in history.of("bob")] == ["chatcmpl-1"]
    assert history.get("alice", "chatcmpl-1") is None and history.get("bob", "chatcmpl-1") is not None
    # The same id from another subject is another run: it replaces nobody's.
    history.start("chatcmpl-3", "req-x", "mallory", stream=False)
    assert history.get("alice", "chatcmpl-3") is not None


def test_a_subtasks_documents_are_part_of_the_run_view() -> None:
    record = _record(Clock())
    subtask = common_pb2.Subtask(id="m1-D2", title="Summarise: b.md", instruction="summarise it", documents=["D2"])
    record.observe(RunEvent(plan=orchestrator_pb2.Plan(subtasks=[subtask])))
    (view,) = record.view().subtasks
    assert view.documents == ["D2"]


def test_a_subtask_waiting_for_quota_is_queued_until_its_announced_wait_is_over() -> None:
    clock = Clock()
    record = _record(clock)
    record.observe(_plan(("t1", []), ("t2", [])))
    record.observe(_started("t1"))
    record.observe(_started("t2"))
    record.observe(
        RunEvent(
            subtask_queued=orchestrator_pb2.SubtaskQueued(
                subtask_id="t2", estimated_wait_ms=500, reason="waiting for the rate limit of anthropic model m"
            )
        )
    )
    clock.advance_ms(200)
    views = {s.id: s for s in record.view().subtasks}
    assert (views["t1"].outcome, views["t2"].outcome) == ("running", "queued")
    assert views["t2"].queued_ms == 500 and views["t1"].queued_ms is None
    clock.advance_ms(400)
    assert {s.id: s.outcome for s in record.view().subtasks}["t2"] == "running"
    finished = _finished("t2")
    finished.subtask_finished.queued_ms = 640  # what the worker really waited
    record.observe(finished)
    assert {s.id: s.queued_ms for s in record.view().subtasks}["t2"] == 640


def test_a_subtask_lists_its_tool_calls_without_their_content() -> None:
    record = RunRecord("chatcmpl-1", "req-1", "subject", stream=False, clock=Clock())
    record.observe(_plan(("t1", [])))
    record.observe(_started("t1"))
    call = common_pb2.ToolCallRecord(
        server="docs", tool="lookup", duration_ms=12, outcome="ok", result_chars=40, turn=2
    )
    finished = orchestrator_pb2.SubtaskFinished(
        subtask_id="t1", outcome=common_pb2.SUBTASK_OUTCOME_OK, tool_calls=[call], tool_loop_end="answered"
    )
    record.observe(RunEvent(subtask_finished=finished))
    [subtask] = record.view().model_dump()["subtasks"]
    assert subtask["tool_calls"] == [
        {"server": "docs", "tool": "lookup", "duration_ms": 12, "outcome": "ok", "result_chars": 40, "turn": 2}
    ]
    assert subtask["tool_loop_end"] == "answered"
