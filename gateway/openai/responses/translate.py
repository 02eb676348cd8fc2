"""Pure translation between the Responses API and the orchestrator: input items to a conversation, and RunEvents
to the response object and its stream events, each with its ``sequence_number``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.openai.protocol import CompletionUsage, InvalidRequest, UnfinishedSubtask
from gateway.openai.responses.protocol import InputItem, ResponseRequest
from gateway.openai.translate import Progress, finish_reason, unfinished, usage_object

# A conversation as it is stored for previous_response_id: (role, text) turns, oldest first, no instructions.
Turns = list[tuple[str, str]]
TERMINAL = ("completed", "failed", "cancelled", "incomplete")
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_TEXT_PARTS = ("input_text", "output_text", "text")


def input_turns(request: ResponseRequest) -> Turns:
    """The request's own input as turns: a string is one user turn; message items keep their roles."""
    if isinstance(request.input, str):
        return [("user", request.input)]
    return [_turn(item, index) for index, item in enumerate(request.input)]


def _turn(item: InputItem, index: int) -> tuple[str, str]:
    param = f"input[{index}]"
    if item.type != "message":
        raise InvalidRequest(f"{param}: items of type {item.type!r} are not supported; send message items", param)
    role = _ROLES.get(item.role or "")
    if role is None:
        raise InvalidRequest(
            f"{param}: role {item.role!r} is not supported (use system, developer, user or assistant)", f"{param}.role"
        )
    content = item.content
    if content is None:
        raise InvalidRequest(f"{param}: content is required", f"{param}.content")
    if isinstance(content, str):
        return role, content
    texts = []
    for part_index, part in enumerate(content):
        part_param = f"{param}.content[{part_index}]"
        if part.type not in _TEXT_PARTS or part.text is None:
            raise InvalidRequest(f"{part_param}: content parts of type {part.type!r} are not supported; send text")
        texts.append(part.text)
    return role, "\n".join(texts)


def to_run_request(
    instructions: str | None, turns: Turns, max_output_tokens: int | None
) -> orchestrator_pb2.RunRequest:
    """The run of ``turns`` (an earlier conversation first, when there is one) under this request's instructions."""
    if not any(role == "user" for role, _ in turns):
        raise InvalidRequest("input must contain at least one user message", "input")
    system = [common_pb2.ChatMessage(role="system", content=instructions)] if instructions else []
    messages = system + [common_pb2.ChatMessage(role=role, content=text) for role, text in turns]
    return orchestrator_pb2.RunRequest(messages=messages, max_output_tokens=max_output_tokens or 0)


def usage(summary: orchestrator_pb2.UsageSummary | None, failed: Iterable[UnfinishedSubtask]) -> dict[str, Any]:
    """Responses' usage shape, with the per-agent cost and the missing subtasks beside it as in chat."""
    chat: CompletionUsage = usage_object(summary, failed)
    return {
        "input_tokens": chat.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": sum(agent.cache_read_input_tokens for agent in chat.agents),
            "cache_write_tokens": sum(agent.cache_creation_input_tokens for agent in chat.agents),
        },
        "output_tokens": chat.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": chat.total_tokens,
        "cost_usd": chat.cost_usd,
        "max_cost_usd": chat.max_cost_usd,
        "agents": [agent.model_dump() for agent in chat.agents],
        "failed_subtasks": [subtask.model_dump() for subtask in chat.failed_subtasks],
    }


def response_object(
    response_id: str, created_at: int, model: str, request: ResponseRequest, max_cost_usd: float
) -> dict[str, Any]:
    """The response as ``POST`` first answers it (``in_progress``, no output yet)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": request.background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": False,
        "previous_response_id": request.previous_response_id,
        "reasoning": None,
        "store": request.store,
        "temperature": request.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": "none",
        "tools": [],
        "top_p": request.top_p,
        "truncation": "disabled",
        "metadata": request.metadata or {},
        "max_cost_usd": max_cost_usd or None,
    }


def ended(response: dict[str, Any], status: str, message: str = "", code: str = "server_error") -> dict[str, Any]:
    """``response`` ended as ``status``; a ``failed`` one carries the reason as its error."""
    error = {"code": code, "message": message} if status == "failed" else None
    return {**response, "status": status, "error": error}


@dataclass
class ResponseEvents:
    """Turns one run's RunEvents into Responses stream events and keeps the response they build.

    The output is a reasoning item (the run's progress, when shown) and then one assistant message; sequence
    numbers start at 0 and rise by one per event."""

    response: dict[str, Any]
    show_progress: bool
    sequence: int = 0
    progress: Progress = field(default_factory=Progress)
    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    failed: list[UnfinishedSubtask] = field(default_factory=list)
    summary: orchestrator_pb2.UsageSummary | None = None
    _open: str = ""  # "reasoning" or "message" while that item is open

    @property
    def _suffix(self) -> str:
        return str(self.response["id"]).removeprefix("resp_")

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def on_event(self, event: orchestrator_pb2.RunEvent) -> list[dict[str, Any]]:
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            return self._text(event.text_delta) if event.text_delta else []
        if kind == "usage":
            self.summary = event.usage
            return []
        if kind == "subtask_finished" and (missing := unfinished(event.subtask_finished)) is not None:
            self.failed.append(missing)
        line = self.progress.describe(event)
        if line is None or not self.show_progress or self._open == "message" or self.text:
            return []  # progress after the answer began would interleave with it: the record keeps it
        events = [] if self._open else self._open_reasoning()
        self.reasoning.append(line)
        return [*events, self._event("response.reasoning_summary_text.delta", **self._reasoning_at(), delta=line)]

    def finish(self) -> list[dict[str, Any]]:
        """The events that close the output and end the response: ``completed``, or ``incomplete`` when the
        answer stopped at its max_tokens (the orchestrator's usage says so)."""
        cut = finish_reason(self.summary) == "length"
        events = self._close(cut)
        if not self.text:  # an empty answer is still one message
            events += self._open_message() + self._close(cut)
        status = "incomplete" if cut else "completed"
        details = {"reason": "max_output_tokens"} if cut else None
        self.response = {**self.response, "status": status, "incomplete_details": details,
                         "output": self.output(incomplete=cut), "usage": self.usage()}  # fmt: skip
        return [*events, self._event(f"response.{status}", response=self.response)]

    def fail(self, message: str, code: str = "server_error") -> list[dict[str, Any]]:
        """The event that ends the response as failed, with what it had produced so far."""
        self.response = {**ended(self.response, "failed", message, code), "output": self.output(incomplete=True)}
        return [self._event("response.failed", response=self.response)]

    def cancelled(self) -> dict[str, Any]:
        self.response = {**ended(self.response, "cancelled"), "output": self.output(incomplete=True)}
        return self.response

    def usage(self) -> dict[str, Any]:
        return usage(self.summary, self.failed)

    def output(self, *, incomplete: bool = False) -> list[dict[str, Any]]:
        items = []
        if self.reasoning:
            items.append(
                self._reasoning_item("incomplete" if incomplete and self._open == "reasoning" else "completed")
            )
        if self.text or not incomplete:
            items.append(self._message_item("incomplete" if incomplete else "completed"))
        return items

    def _text(self, delta: str) -> list[dict[str, Any]]:
        events = [] if self._open == "message" else self._close() + self._open_message()
        self.text.append(delta)
        return [*events, self._event("response.output_text.delta", **self._message_at(), delta=delta, logprobs=[])]

    def _open_reasoning(self) -> list[dict[str, Any]]:
        self._open = "reasoning"
        item = {"id": f"rs_{self._suffix}", "type": "reasoning", "summary": [], "status": "in_progress"}
        part = {"type": "summary_text", "text": ""}
        return [
            self._event("response.output_item.added", output_index=0, item=item),
            self._event("response.reasoning_summary_part.added", **self._reasoning_at(), part=part),
        ]

    def _open_message(self) -> list[dict[str, Any]]:
        self._open = "message"
        item = {
            "id": f"msg_{self._suffix}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "status": "in_progress",
        }
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self._event("response.output_item.added", output_index=self._message_index(), item=item),
            self._event("response.content_part.added", **self._message_at(), part=part),
        ]

    def _close(self, cut: bool = False) -> list[dict[str, Any]]:
        opened, self._open = self._open, ""
        if opened == "reasoning":
            text = "".join(self.reasoning)
            return [
                self._event("response.reasoning_summary_text.done", **self._reasoning_at(), text=text),
                self._event(
                    "response.reasoning_summary_part.done",
                    **self._reasoning_at(),
                    part={"type": "summary_text", "text": text},
                ),
                self._event("response.output_item.done", output_index=0, item=self._reasoning_item("completed")),
            ]
        if opened == "message":
            text = "".join(self.text)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            return [
                self._event("response.output_text.done", **self._message_at(), text=text, logprobs=[]),
                self._event("response.content_part.done", **self._message_at(), part=part),
                self._event(
                    "response.output_item.done",
                    output_index=self._message_index(),
                    item=self._message_item("incomplete" if cut else "completed"),
                ),
            ]
        return []

    def _reasoning_item(self, status: str) -> dict[str, Any]:
        summary = [{"type": "summary_text", "text": "".join(self.reasoning)}]
        return {"id": f"rs_{self._suffix}", "type": "reasoning", "summary": summary, "status": status}

    def _message_item(self, status: str) -> dict[str, Any]:
        part = {"type": "output_text", "text": "".join(self.text), "annotations": [], "logprobs": []}
        return {
            "id": f"msg_{self._suffix}",
            "type": "message",
            "role": "assistant",
            "content": [part],
            "status": status,
        }

    def _message_index(self) -> int:
        return 1 if self.reasoning else 0

    def _reasoning_at(self) -> dict[str, Any]:
        return {"item_id": f"rs_{self._suffix}", "output_index": 0, "summary_index": 0}

    def _message_at(self) -> dict[str, Any]:
        return {"item_id": f"msg_{self._suffix}", "output_index": self._message_index(), "content_index": 0}

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event
