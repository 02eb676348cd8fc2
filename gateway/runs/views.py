"""The JSON shapes of /v1/runs and /v1/runs/{id}: what the inspector page, and any API client, reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from gateway.openai.protocol import CompletionUsage

Status = Literal["in_progress", "ok", "error"]
Phase = Literal["planning", "coordination", "synthesis"]
MS_FROM_START = "milliseconds from the run's start, on the gateway's clock"


class PlanView(BaseModel):
    fallback: bool = Field(description="the planner's plan was unusable: the request ran as one subtask")
    fallback_reason: str | None
    repairs: list[str] = Field(
        default_factory=list, description="how the planner's routing was corrected; absent when it was not"
    )

    @model_serializer(mode="wrap")
    def _without_empty_repairs(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if not data.get("repairs"):
            data.pop("repairs", None)
        return data


class ToolCallView(BaseModel):
    server: str = Field(description="the MCP server's name in the team file")
    tool: str
    duration_ms: int
    outcome: str = Field(description="ok, error, timeout, refused, unavailable or looping")
    result_chars: int = Field(description="size of the result before it was capped for the model; never its content")
    turn: int = Field(description="the model turn that asked for it, from 1")


class SubtaskView(BaseModel):
    id: str
    title: str
    agent: str | None = Field(default=None, description="the worker specialist that runs it")
    instruction: str
    depends_on: list[str]
    documents: list[str] = Field(default_factory=list, description="ids of the request's documents its worker got")
    started_ms: int | None = Field(description=f"{MS_FROM_START}; for one never started, when it was given up")
    finished_ms: int | None = Field(description=MS_FROM_START)
    outcome: str = Field(
        description="ok, failed, skipped, timed_out or over_budget; pending, queued (its worker waits for the "
        "model's rate limit) or running while the run goes on; cancelled or not_run when the run ended without it"
    )
    error: str | None = Field(description="why it did not succeed, for people")
    queued_ms: int | None = Field(
        default=None,
        description="milliseconds of its time spent waiting for the model's rate limit (the worker's estimate "
        "until it finishes); null when it did not wait",
    )
    tool_calls: list[ToolCallView] = Field(default_factory=list, description="the specialist's tool calls, in order")
    tool_loop_end: str | None = Field(
        default=None, description="answered, max_turns or over_budget; null for a specialist without tools"
    )


class PhaseView(BaseModel):
    started_ms: int = Field(description=MS_FROM_START)
    finished_ms: int | None = Field(description=f"{MS_FROM_START}; null while under way")


class RunError(BaseModel):
    phase: Phase = Field(description="the phase the run was in when it failed")
    code: str = Field(description="e.g. deadline_exceeded, unavailable, cancelled (the client went away)")
    message: str


class RunSummary(BaseModel):
    object: Literal["run"] = "run"
    id: str = Field(description="the completion id")
    request_id: str
    created: int = Field(description="Unix seconds")
    stream: bool
    status: Status
    error: RunError | None
    duration_ms: int = Field(description="the whole run, or so far while in progress")
    subtasks_count: int
    cost_usd: float | None = Field(description="null while unknown or when a model has no price")


class RunView(RunSummary):
    subject: str = Field(description="the caller's JWT subject, hashed")
    plan: PlanView | None
    subtasks: list[SubtaskView]
    phases: dict[Phase, PhaseView] = Field(description="the phases reached, as the gateway saw them")
    phases_ms: dict[Phase, int] | None = Field(description="durations measured by the orchestrator, once reported")
    usage: CompletionUsage | None = Field(description="the completion's usage: tokens, cost, per agent")


class RunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RunSummary] = Field(description="newest first")
