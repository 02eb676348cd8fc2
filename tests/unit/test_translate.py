"""gateway.openai.translate: OpenAI messages -> RunRequest, RunEvents -> chunks and completions (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.openai.protocol import ChatCompletionRequest, InvalidRequest
from gateway.openai.translate import DETAILED_PLAN_SIZE, ChunkStream, Progress, completion, to_run_request, usage_object
from gateway.spend.control import lowered_headers


def _request(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "agentmesh", **fields})


def _plan(*titles: str) -> orchestrator_pb2.RunEvent:
    subtasks = [common_pb2.Subtask(id=f"t{i}", title=title) for i, title in enumerate(titles, 1)]
    return orchestrator_pb2.RunEvent(plan=orchestrator_pb2.Plan(subtasks=subtasks))


def _usage(*, fully_priced: bool = True) -> orchestrator_pb2.RunEvent:
    by_agent = [
        common_pb2.Usage(agent="orchestrator", model="m-big", input_tokens=10, output_tokens=5, cost_usd=0.5,
                         priced=True, calls=1),
        common_pb2.Usage(agent="worker", model="m-small", input_tokens=7, output_tokens=3,
                         cache_creation_input_tokens=2, cache_read_input_tokens=1, cost_usd=0.25,
                         priced=fully_priced, calls=2),
    ]  # fmt: skip
    summary = orchestrator_pb2.UsageSummary(
        by_agent=by_agent, input_tokens=20, output_tokens=8, cost_usd=0.75, fully_priced=fully_priced
    )
    return orchestrator_pb2.RunEvent(usage=summary)


def _stream(*, show_progress: bool = True, include_usage: bool = False) -> ChunkStream:
    return ChunkStream("chatcmpl-r1", 1700000000, "agentmesh", show_progress, include_usage)


RUN = [
    _plan("Research", "Write"),
    orchestrator_pb2.RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id="t1")),
    orchestrator_pb2.RunEvent(subtask_finished=orchestrator_pb2.SubtaskFinished(subtask_id="t1", duration_ms=1500)),
    orchestrator_pb2.RunEvent(subtask_finished=orchestrator_pb2.SubtaskFinished(subtask_id="t2", error="model down")),
    orchestrator_pb2.RunEvent(text_delta="Hello"),
    orchestrator_pb2.RunEvent(text_delta=", world"),
    _usage(),
]


def _all_chunks(stream: ChunkStream) -> list[dict[str, Any]]:
    chunks = stream.start()
    for event in RUN:
        chunks += stream.on_event(event)
    return chunks + stream.finish()


class TestRunRequest:
    def test_string_and_text_parts_are_flattened(self) -> None:
        request = _request(
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "three"},
            ],
            max_completion_tokens=64,
        )
        run = to_run_request(request)
        assert [(m.role, m.content) for m in run.messages] == [
            ("system", "be brief"),
            ("user", "one\ntwo"),
            ("assistant", "ok"),
            ("user", "three"),
        ]
        assert run.max_output_tokens == 64

    def test_max_tokens_is_the_fallback_and_zero_means_default(self) -> None:
        assert (
            to_run_request(_request(messages=[{"role": "user", "content": "x"}], max_tokens=9)).max_output_tokens == 9
        )
        assert to_run_request(_request(messages=[{"role": "user", "content": "x"}])).max_output_tokens == 0

    def test_image_part_is_rejected_with_its_param(self) -> None:
        parts = [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
        request = _request(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": parts}])
        with pytest.raises(InvalidRequest) as caught:
            to_run_request(request)
        assert caught.value.param == "messages[1].content[1]"
        assert "image_url" in caught.value.message

    @pytest.mark.parametrize("role", ["tool", "function", "robot"])
    def test_unsupported_roles_are_rejected(self, role: str) -> None:
        request = _request(messages=[{"role": "user", "content": "x"}, {"role": role, "content": "y"}])
        with pytest.raises(InvalidRequest) as caught:
            to_run_request(request)
        assert caught.value.param == "messages[1].role"

    def test_needs_a_user_message(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            to_run_request(_request(messages=[{"role": "system", "content": "x"}]))
        assert caught.value.param == "messages"

    def test_n_above_one_is_rejected(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            to_run_request(_request(messages=[{"role": "user", "content": "x"}], n=2))
        assert caught.value.param == "n"


class TestChunks:
    def test_shared_id_and_created_role_first_finish_last(self) -> None:
        chunks = _all_chunks(_stream())
        assert {(c["id"], c["created"], c["object"], c["model"]) for c in chunks} == {
            ("chatcmpl-r1", 1700000000, "chat.completion.chunk", "agentmesh")
        }
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
        assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
        assert all(c["usage"] is None and len(c["choices"]) == 1 for c in chunks)

    def test_progress_goes_to_both_reasoning_keys_never_content(self) -> None:
        deltas = [c["choices"][0]["delta"] for c in _all_chunks(_stream())]
        progress = [d for d in deltas if "reasoning_content" in d]
        assert all(d["reasoning"] == d["reasoning_content"] and "content" not in d for d in progress)
        text = "".join(d["reasoning_content"] for d in progress)
        assert "Plan: 2 subtasks\n1. Research\n2. Write\n" in text
        assert "✓ Research done in 1.5 s" in text
        assert "✗ Write failed: model down" in text
        assert "".join(d.get("content", "") for d in deltas) == "Hello, world"

    def test_progress_can_be_turned_off(self) -> None:
        deltas = [c["choices"][0]["delta"] for c in _all_chunks(_stream(show_progress=False))]
        assert not [d for d in deltas if "reasoning_content" in d or "reasoning" in d]

    def test_fallback_plan_says_so(self) -> None:
        event = orchestrator_pb2.RunEvent(
            plan=orchestrator_pb2.Plan(subtasks=[common_pb2.Subtask(id="t1")], fallback=True, fallback_reason="no")
        )
        (chunk,) = _stream().on_event(event)
        assert chunk["choices"][0]["delta"]["reasoning"] == "Plan: 1 subtask (fallback: no)\n1. t1\n"

    def test_usage_chunk_only_with_include_usage(self) -> None:
        chunks = _all_chunks(_stream(include_usage=True))
        usage_chunks = [c for c in chunks if c["usage"] is not None]
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"] == []
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        usage = chunks[-1]["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (20, 8, 28)
        assert usage["cost_usd"] == 0.75
        assert usage["agents"][1] == {
            "agent": "worker",
            "model": "m-small",
            "input_tokens": 7,
            "output_tokens": 3,
            "cache_creation_input_tokens": 2,
            "cache_read_input_tokens": 1,
            "cost_usd": 0.25,
            "calls": 2,
        }

    def test_unpriced_cost_is_null(self) -> None:
        usage = usage_object(_usage(fully_priced=False).usage)
        assert usage.cost_usd is None
        assert [a.cost_usd for a in usage.agents] == [0.5, None]

    def test_usage_chunk_without_a_usage_event_is_zero(self) -> None:
        stream = _stream(include_usage=True)
        usage = stream.finish()[-1]["usage"]
        assert usage == {
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cost_usd": None,
            "max_cost_usd": None,
            "agents": [],
            "failed_subtasks": [],
        }


class TestCompletion:
    def test_collects_content_reasoning_and_usage(self) -> None:
        result = completion("chatcmpl-r1", 1700000000, "agentmesh", RUN, show_progress=True).model_dump()
        assert result["object"] == "chat.completion"
        (choice,) = result["choices"]
        assert choice["message"]["content"] == "Hello, world"
        assert choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] == "stop"
        assert "Plan: 2 subtasks" in choice["message"]["reasoning_content"]
        assert result["usage"]["total_tokens"] == 28

    def test_no_reasoning_when_progress_is_off(self) -> None:
        result = completion("chatcmpl-r1", 1, "agentmesh", RUN, show_progress=False)
        assert result.choices[0].message.reasoning_content is None


def _fitted(*, answer_cut: bool) -> orchestrator_pb2.RunEvent:
    by_agent = [
        common_pb2.Usage(agent="orchestrator", model="m-big", max_tokens=91, max_tokens_lowered_from=2048),
        common_pb2.Usage(agent="worker", specialist="generalist", model="m-small", max_tokens=2048),
        common_pb2.Usage(agent="synthesizer", model="m-small", max_tokens=900, max_tokens_lowered_from=4096,
                         hit_max_tokens=answer_cut),
    ]  # fmt: skip
    return orchestrator_pb2.RunEvent(usage=orchestrator_pb2.UsageSummary(by_agent=by_agent))


class TestFittedCaps:
    def test_an_answer_cut_at_its_max_tokens_finishes_with_length(self) -> None:
        for cut, reason in ((True, "length"), (False, "stop")):
            stream = _stream(include_usage=True)
            stream.on_event(_fitted(answer_cut=cut))
            assert stream.finish()[0]["choices"][0]["finish_reason"] == reason
            result = completion("chatcmpl-r1", 1, "agentmesh", [_fitted(answer_cut=cut)], False)
            assert result.choices[0].finish_reason == reason

    def test_a_plan_cut_short_is_not_the_answer_cut_short(self) -> None:
        event = _fitted(answer_cut=False)
        event.usage.by_agent[0].hit_max_tokens = True
        assert completion("chatcmpl-r1", 1, "agentmesh", [event], False).choices[0].finish_reason == "stop"

    def test_the_usage_says_per_agent_which_max_tokens_were_lowered(self) -> None:
        usage = usage_object(_fitted(answer_cut=False).usage)
        rows = [row.model_dump() for row in usage.agents]
        assert [(r["agent"], r["max_tokens"], r.get("max_tokens_lowered_from")) for r in rows] == [
            ("orchestrator", 91, 2048),
            ("worker", 2048, None),
            ("synthesizer", 900, 4096),
        ]
        assert "max_tokens_lowered_from" not in rows[1]  # absent, not null, when not lowered
        assert lowered_headers(usage) == {"X-Max-Tokens-Lowered": "orchestrator 2048->91, synthesizer 4096->900"}
        assert lowered_headers(usage_object(_usage().usage)) == {}


class SteppedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _finished(sid: str, outcome: int = common_pb2.SUBTASK_OUTCOME_OK) -> orchestrator_pb2.RunEvent:
    error = "" if outcome == common_pb2.SUBTASK_OUTCOME_OK else "worker gone"
    return orchestrator_pb2.RunEvent(
        subtask_finished=orchestrator_pb2.SubtaskFinished(subtask_id=sid, outcome=outcome, error=error)  # type: ignore[arg-type]
    )


def _queued(sid: str) -> orchestrator_pb2.RunEvent:
    queued = orchestrator_pb2.SubtaskQueued(subtask_id=sid, estimated_wait_ms=1500, reason="waiting for the rate limit")
    return orchestrator_pb2.RunEvent(subtask_queued=queued)


def test_a_small_plan_gets_a_line_per_queued_and_finished_subtask() -> None:
    progress = Progress()
    assert progress.describe(_plan("Paris", "Rome")) == "Plan: 2 subtasks\n1. Paris\n2. Rome\n"
    assert progress.describe(_queued("t2")) == "⏸ Rome queued: waiting for the rate limit (about 1.5 s)\n"
    assert progress.describe(_finished("t2")) == "✓ Rome done in 0.0 s\n"


def test_a_256_subtask_plan_is_summarised_at_most_once_a_second_and_once_at_the_end() -> None:
    clock = SteppedClock()
    progress = Progress(clock=clock)
    plan = progress.describe(_plan(*(f"part {n}" for n in range(1, 257))))
    assert plan is not None and plan.count("\n") == 1 + DETAILED_PLAN_SIZE + 1
    assert plan.endswith(f"{DETAILED_PLAN_SIZE}. part {DETAILED_PLAN_SIZE}\n… and {256 - DETAILED_PLAN_SIZE} more\n")
    assert progress.describe(_queued("t200")) is None
    lines = []
    for n in range(1, 257):
        clock.now = n * 0.05  # 256 subtasks finishing over 12.8 s
        outcome = common_pb2.SUBTASK_OUTCOME_FAILED if n in (4, 9) else common_pb2.SUBTASK_OUTCOME_OK
        if (line := progress.describe(_finished(f"t{n}", outcome))) is not None:
            lines.append(line)
    assert len(lines) <= 14  # one a second, and the last
    assert lines[0] == "Progress: 1/256 done, 1 queued for quota\n"
    assert lines[-1] == "Progress: 256/256 done, 2 did not succeed (t4, t9)\n"


def test_a_finished_subtask_names_its_tool_calls_and_how_its_loop_ended() -> None:
    stream = _stream()
    stream.on_event(_plan("Research"))
    calls = [
        common_pb2.ToolCallRecord(server="docs", tool="lookup", duration_ms=12, outcome="ok", result_chars=40, turn=1),
        common_pb2.ToolCallRecord(server="time", tool="now", duration_ms=30000, outcome="timeout", turn=1),
    ]
    finished = orchestrator_pb2.SubtaskFinished(
        subtask_id="t1",
        duration_ms=1500,
        outcome=common_pb2.SUBTASK_OUTCOME_OK,
        tool_calls=calls,
        tool_loop_end="max_turns",
    )
    (chunk,) = stream.on_event(orchestrator_pb2.RunEvent(subtask_finished=finished))
    assert chunk["choices"][0]["delta"]["reasoning_content"] == (
        "✓ Research done in 1.5 s (tools: docs.lookup ok 12 ms, time.now timeout 30000 ms, stopped at max_turns)\n"
    )
