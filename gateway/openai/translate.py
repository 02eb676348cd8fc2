"""Pure translation between OpenAI chat shapes and the orchestrator's RunRequest/RunEvent messages."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentmesh.usage import outcome_name
from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.openai.documents import document_text
from gateway.openai.protocol import (
    AgentUsage,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    Choice,
    CompletionUsage,
    FileIn,
    InvalidRequest,
    UnfinishedSubtask,
)

# OpenAI's "developer" role is the newer name of "system".
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def to_run_request(request: ChatCompletionRequest) -> orchestrator_pb2.RunRequest:
    if request.n != 1:
        raise InvalidRequest("n must be 1: the service returns a single choice", "n")
    documents: list[common_pb2.Document] = []
    messages = [_chat_message(message, index, documents) for index, message in enumerate(request.messages)]
    if not any(message.role == "user" for message in messages):
        raise InvalidRequest("messages must contain at least one user message", "messages")
    max_tokens = request.max_completion_tokens or request.max_tokens or 0
    return orchestrator_pb2.RunRequest(messages=messages, max_output_tokens=max_tokens, documents=documents)


def _chat_message(message: ChatMessageIn, index: int, documents: list[common_pb2.Document]) -> common_pb2.ChatMessage:
    role = _ROLES.get(message.role)
    if role is None:
        raise InvalidRequest(
            f"messages[{index}]: role {message.role!r} is not supported (use system, developer, user or assistant)",
            f"messages[{index}].role",
        )
    return common_pb2.ChatMessage(role=role, content=_text_of(message, index, documents))


def _text_of(message: ChatMessageIn, index: int, documents: list[common_pb2.Document]) -> str:
    """Flattens string or text-part content; ``file`` parts of a user message become documents (D1, D2, ...,
    numbered across the conversation). Anything else (images, audio) is rejected."""
    content = message.content
    if content is None:
        raise InvalidRequest(f"messages[{index}]: content is required", f"messages[{index}].content")
    if isinstance(content, str):
        return content
    texts, attached = [], []
    for part_index, part in enumerate(content):
        param = f"messages[{index}].content[{part_index}]"
        if part.type == "file" and message.role == "user":
            attached.append(_document(part.file, len(documents) + 1, param))
            documents.append(attached[-1])
            continue
        if part.type != "text":
            supported = "send text, or files in a user message" if part.type != "file" else "files go in user messages"
            raise InvalidRequest(f"{param}: content parts of type {part.type!r} are not supported; {supported}", param)
        if part.text is None:
            raise InvalidRequest(f"{param}: a text part needs a 'text' string", param)
        texts.append(part.text)
    if not texts and attached:  # a message of documents alone still says something
        return "(attached: " + ", ".join(f"{d.id} {d.name}" for d in attached) + ")"
    return "\n".join(texts)


def _document(file: FileIn | None, number: int, param: str) -> common_pb2.Document:
    if file is None:
        raise InvalidRequest(f"{param}: a file part needs a 'file' object with filename and file_data", param)
    text = document_text(file, param)
    return common_pb2.Document(id=f"D{number}", name=file.filename or f"document-{number}", text=text)


def unfinished(finished: orchestrator_pb2.SubtaskFinished) -> UnfinishedSubtask | None:
    """The subtask as the usage object lists it when it did not succeed; None when it did."""
    outcome = finished.outcome
    if outcome == common_pb2.SUBTASK_OUTCOME_UNSPECIFIED:  # an orchestrator older than the outcome field
        outcome = common_pb2.SUBTASK_OUTCOME_FAILED if finished.error else common_pb2.SUBTASK_OUTCOME_OK
    if outcome == common_pb2.SUBTASK_OUTCOME_OK:
        return None
    return UnfinishedSubtask(id=finished.subtask_id, outcome=outcome_name(outcome), reason=finished.error)


def usage_object(
    summary: orchestrator_pb2.UsageSummary | None, failed: Iterable[UnfinishedSubtask] = ()
) -> CompletionUsage:
    summary = summary or orchestrator_pb2.UsageSummary()
    return CompletionUsage(
        failed_subtasks=list(failed),
        prompt_tokens=summary.input_tokens,
        completion_tokens=summary.output_tokens,
        total_tokens=summary.input_tokens + summary.output_tokens,
        cost_usd=summary.cost_usd if summary.fully_priced else None,
        max_cost_usd=summary.max_cost_usd or None,
        agents=[
            AgentUsage(
                agent=usage.agent,
                specialist=usage.specialist or None,
                model=usage.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cost_usd=usage.cost_usd if usage.priced else None,
                calls=usage.calls,
                max_tokens=usage.max_tokens or None,
                max_tokens_lowered_from=usage.max_tokens_lowered_from or None,
            )
            for usage in summary.by_agent
        ],
    )


def finish_reason(summary: orchestrator_pb2.UsageSummary | None) -> str:
    """``length`` when the synthesizer's answer stopped at its max_tokens (lowered to fit a cost cap, or asked
    for), else ``stop``."""
    cut = summary is not None and any(u.agent == "synthesizer" and u.hit_max_tokens for u in summary.by_agent)
    return "length" if cut else "stop"


DETAILED_PLAN_SIZE = 16
"""Plans up to this size get a progress line per subtask event; larger ones a summary line (``Progress``)."""
SUMMARY_INTERVAL_S = 1.0


@dataclass
class Progress:
    """Describes plan and subtask events as human-readable progress lines.

    The batching rule: a plan of up to ``DETAILED_PLAN_SIZE`` subtasks gets one line per subtask that is queued
    for quota or finishes. A larger one lists its first ``DETAILED_PLAN_SIZE`` titles, then gets one summary
    line ("Progress: 37/256 done, 2 failed (t4, t9), 40 queued for quota") at most every ``SUMMARY_INTERVAL_S``
    seconds while subtasks finish, and always once the last one has: a 256-way fan-out is a few dozen lines,
    not hundreds, whatever the pace of the events.
    """

    titles: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _finished_count: int = 0
    _failed: list[str] = field(default_factory=list)
    _queued: set[str] = field(default_factory=set)
    _summarised_at: float = -math.inf

    def describe(self, event: orchestrator_pb2.RunEvent) -> str | None:
        kind = event.WhichOneof("event")
        if kind == "plan":
            return self._plan(event.plan)
        if kind == "subtask_queued":
            self._queued.add(event.subtask_queued.subtask_id)
            return self._queued_line(event.subtask_queued) if self._detailed else None
        if kind == "subtask_finished":
            self._queued.discard(event.subtask_finished.subtask_id)
            self._finished_count += 1
            if unfinished(event.subtask_finished) is not None:
                self._failed.append(event.subtask_finished.subtask_id)
            return self._finished(event.subtask_finished) if self._detailed else self._summary()
        return None

    @property
    def _detailed(self) -> bool:
        return len(self.titles) <= DETAILED_PLAN_SIZE

    def _queued_line(self, queued: orchestrator_pb2.SubtaskQueued) -> str:
        title = self.titles.get(queued.subtask_id, queued.subtask_id)
        return f"⏸ {title} queued: {queued.reason} (about {queued.estimated_wait_ms / 1000:.1f} s)\n"

    def _summary(self) -> str | None:
        now, total = self.clock(), len(self.titles)
        if self._finished_count < total and now - self._summarised_at < SUMMARY_INTERVAL_S:
            return None
        self._summarised_at = now
        line = f"Progress: {self._finished_count}/{total} done"
        if self._failed:
            shown = ", ".join(self._failed[:5]) + (
                f" and {len(self._failed) - 5} more" if len(self._failed) > 5 else ""
            )
            line += f", {len(self._failed)} did not succeed ({shown})"
        if self._queued:
            line += f", {len(self._queued)} queued for quota"
        return line + "\n"

    def _plan(self, plan: orchestrator_pb2.Plan) -> str:
        # A plan over one specialist names none: there was no choice to show.
        routed = len({subtask.agent for subtask in plan.subtasks}) > 1 or bool(plan.repairs)
        self.titles = {subtask.id: _title(subtask, routed) for subtask in plan.subtasks}
        count = len(plan.subtasks)
        lines = [f"Plan: {count} subtask{'' if count == 1 else 's'}"]
        if plan.fallback:
            lines[0] += f" (fallback: {plan.fallback_reason or 'the planner gave no usable plan'})"
        if plan.repairs:
            lines[0] += f" (routing repaired: {'; '.join(plan.repairs)})"
        shown = plan.subtasks[:DETAILED_PLAN_SIZE]
        lines += [f"{number}. {self.titles[subtask.id]}" for number, subtask in enumerate(shown, 1)]
        if count > len(shown):
            lines.append(f"… and {count - len(shown)} more")
        return "\n".join(lines) + "\n"

    def _finished(self, finished: orchestrator_pb2.SubtaskFinished) -> str:
        title = self.titles.get(finished.subtask_id, finished.subtask_id)
        missing = unfinished(finished)
        if missing is None:
            return f"✓ {title} done in {finished.duration_ms / 1000:.1f} s{_tools(finished)}\n"
        said = {"timed_out": "did not finish in time", "over_budget": "left out (cost cap)"}
        return f"✗ {title} {said.get(missing.outcome, missing.outcome)}: {finished.error}\n"


_LOOP_ENDS = {"max_turns": "stopped at max_turns", "over_budget": "over budget: best answer so far"}


def _tools(finished: orchestrator_pb2.SubtaskFinished) -> str:
    """The tool calls of a finished subtask, e.g. " (tools: docs.lookup ok 12 ms, docs.fetch timeout 30000 ms)"."""
    calls = [f"{c.server}.{c.tool} {c.outcome} {c.duration_ms} ms" for c in finished.tool_calls]
    if end := _LOOP_ENDS.get(finished.tool_loop_end):
        calls.append(end)
    return f" (tools: {', '.join(calls)})" if calls else ""


def _title(subtask: common_pb2.Subtask, routed: bool) -> str:
    title = subtask.title or subtask.id
    return f"{title} ({subtask.agent})" if routed and subtask.agent else title


def joined(events: list[orchestrator_pb2.RunEvent]) -> Iterator[orchestrator_pb2.RunEvent]:
    """``events`` with each run of consecutive text deltas as one: one chunk for the client instead of many."""
    text: list[str] = []
    for event in events:
        if event.WhichOneof("event") == "text_delta":
            text.append(event.text_delta)
            continue
        if text:
            yield orchestrator_pb2.RunEvent(text_delta="".join(text))
            text = []
        yield event
    if text:
        yield orchestrator_pb2.RunEvent(text_delta="".join(text))


@dataclass
class ChunkStream:
    """Turns RunEvents into ``chat.completion.chunk`` dicts that share one id and created time."""

    completion_id: str
    created: int
    model: str
    show_progress: bool
    include_usage: bool
    progress: Progress = field(default_factory=Progress)
    usage: orchestrator_pb2.UsageSummary | None = None
    failed: list[UnfinishedSubtask] = field(default_factory=list)

    def start(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def on_event(self, event: orchestrator_pb2.RunEvent) -> list[dict[str, Any]]:
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            return [self._chunk({"content": event.text_delta})] if event.text_delta else []
        if kind == "usage":
            self.usage = event.usage
            return []
        if kind == "subtask_finished" and (missing := unfinished(event.subtask_finished)) is not None:
            self.failed.append(missing)
        text = self.progress.describe(event)
        if text is None or not self.show_progress:
            return []
        # Clients read one or the other name; progress never goes into content.
        return [self._chunk({"reasoning_content": text, "reasoning": text})]

    def finish(self) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, finish_reason=finish_reason(self.usage))]
        if self.include_usage:
            chunks.append({**self._base(), "choices": [], "usage": usage_object(self.usage, self.failed).model_dump()})
        return chunks

    def _chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base(), "choices": [choice], "usage": None}

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }


def completion(
    completion_id: str, created: int, model: str, events: Iterable[orchestrator_pb2.RunEvent], show_progress: bool
) -> ChatCompletion:
    """The single ``chat.completion`` for a finished run's events."""
    progress = Progress()
    content: list[str] = []
    reasoning: list[str] = []
    usage: orchestrator_pb2.UsageSummary | None = None
    failed: list[UnfinishedSubtask] = []
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            content.append(event.text_delta)
        elif kind == "usage":
            usage = event.usage
        elif (text := progress.describe(event)) is not None:
            reasoning.append(text)
        if kind == "subtask_finished" and (missing := unfinished(event.subtask_finished)) is not None:
            failed.append(missing)
    message = AssistantMessage(
        content="".join(content), reasoning_content="".join(reasoning) if show_progress and reasoning else None
    )
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(index=0, message=message, finish_reason=finish_reason(usage))],
        usage=usage_object(usage, failed),
    )
