"""Orchestrator.Run: plan, run the plan on workers, relay the synthesis, report the cost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from agentmesh import metrics
from agentmesh.deadline import deadline_in
from agentmesh.llm.provider import InvalidResponse, LLMProvider, ProviderError
from agentmesh.rpc.deadline import MARGIN_S, phase_budget
from agentmesh.rpc.errors import PhaseFailed, downstream_failure, status_for
from agentmesh.usage import summarize, usage_message
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, synthesizer_pb2, worker_pb2
from orchestrator_svc.downstream import Downstream
from orchestrator_svc.observability import RunRecorder, subtask_span
from orchestrator_svc.planner import (
    Plan,
    fallback_plan,
    objective_text,
    plan_from_tool_input,
    plan_tool,
    planning_prompt,
)
from orchestrator_svc.scheduler import FAILED, TIMED_OUT, CoordinationTimeout, Execute, Scheduler, SubtaskFailed
from orchestrator_svc.settings import OrchestratorSettings

logger = logging.getLogger(__name__)

RunContext = grpc.aio.ServicerContext[orchestrator_pb2.RunRequest, orchestrator_pb2.RunEvent]


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(self, provider: LLMProvider, downstream: Downstream, settings: OrchestratorSettings) -> None:
        self._provider = provider
        self._downstream = downstream
        self._settings = settings

    async def Run(
        self, request: orchestrator_pb2.RunRequest, context: RunContext
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        metrics.runs_in_flight.inc()
        try:
            async with contextlib.aclosing(self._run(request, context)) as events:
                async for event in events:
                    yield event
        finally:
            metrics.runs_in_flight.dec()

    async def _run(
        self, request: orchestrator_pb2.RunRequest, context: RunContext
    ) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        recorder = RunRecorder()
        objective = objective_text(request.messages)
        with recorder.phase("planning"):
            plan, plan_usage = await self._plan(request, objective, context)
        usages = [plan_usage] if plan_usage is not None else []
        plan_event = orchestrator_pb2.RunEvent(
            plan=orchestrator_pb2.Plan(
                subtasks=plan.subtasks,
                fallback=bool(plan.fallback_reason),
                fallback_reason=plan.fallback_reason,
                usage=plan_usage,
            )
        )
        recorder.planned(plan_event.plan)
        yield plan_event
        budget = self._coordination_budget(context)
        executor = self._executor(objective, time.monotonic() + budget)
        scheduler = Scheduler(
            plan.subtasks,
            executor,
            fail_fast=self._settings.fail_fast,
            finish_on_timeout=self._settings.on_coordination_timeout == "synthesize",
        )
        try:
            with recorder.phase("coordination"):
                async with contextlib.aclosing(scheduler.run(budget)) as events:
                    async for event in events:
                        if event.HasField("subtask_finished"):
                            recorder.subtask_finished(event.subtask_finished)
                            if event.subtask_finished.HasField("usage"):
                                usages.append(event.subtask_finished.usage)
                        yield event
        except CoordinationTimeout as exc:
            raise PhaseFailed(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        except SubtaskFailed as exc:  # only with FAIL_FAST
            raise PhaseFailed(grpc.StatusCode[exc.status], f"subtask failed (FAIL_FAST is on): {exc}") from None
        if len(scheduler.failures) == len(plan.subtasks):  # some subtask succeeded, or nothing is worth synthesizing
            first = next(iter(scheduler.failures.values()))
            details = "; ".join(f"{sid}: {failure}" for sid, failure in scheduler.failures.items())
            raise PhaseFailed(grpc.StatusCode[first.status], f"every subtask failed: {details}")
        synthesis = synthesizer_pb2.SynthesizeRequest(
            objective=objective,
            subtasks=plan.subtasks,
            results=[scheduler.results[s.id] for s in plan.subtasks],
            max_output_tokens=request.max_output_tokens,
        )
        with recorder.phase("synthesis"):
            async for event in self._synthesize(synthesis, usages, context):
                yield event
        summary = summarize(usages)
        summary.durations.CopyFrom(recorder.durations())
        yield orchestrator_pb2.RunEvent(usage=summary)

    async def _plan(
        self, request: orchestrator_pb2.RunRequest, objective: str, context: RunContext
    ) -> tuple[Plan, common_pb2.Usage | None]:
        settings = self._settings
        prompt = planning_prompt(request.messages, settings.orchestrator_model, settings.orchestrator_max_tokens)
        budget = phase_budget(settings.planning_timeout, context)
        try:
            # The deadline also bounds the provider's retries: it gives up rather than wait past the phase.
            with deadline_in(budget):
                async with asyncio.timeout(budget):
                    call = await self._provider.call_tool(prompt, plan_tool(settings.max_subtasks))
        except TimeoutError:
            raise PhaseFailed(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"planning timed out after {round(budget, 2):g} s"
            ) from None
        except InvalidResponse as exc:
            logger.warning("planner gave no usable plan, falling back", extra={"reason": str(exc)})
            return fallback_plan(objective, f"the planner gave no plan: {exc}"), None
        except ProviderError as exc:
            code, message = status_for(exc)
            raise PhaseFailed(code, f"planning failed: {message}") from None
        plan = plan_from_tool_input(call.input, objective, settings.max_subtasks)
        if plan.fallback_reason:
            logger.warning("plan rejected, falling back", extra={"reason": plan.fallback_reason})
        logger.info("planned", extra={"subtasks": len(plan.subtasks)})
        return plan, usage_message("orchestrator", call.usage)

    def _coordination_budget(self, context: RunContext) -> float:
        """WORKER_COORDINATION_TIMEOUT, but ending early enough that a synthesis still fits in the caller's deadline.

        The synthesis keeps SYNTHESIS_TIMEOUT, or half of what is left when the deadline is nearer: a run must
        never spend on workers and then time out with nothing to show.
        """
        settings = self._settings
        remaining = context.time_remaining()
        if remaining is None:
            return settings.worker_coordination_timeout
        left = remaining - MARGIN_S
        reserve = min(settings.synthesis_timeout, left / 2)
        return max(0.0, min(settings.worker_coordination_timeout, left - reserve))

    def _executor(self, objective: str, coordination_ends: float) -> Execute:
        """Each Execute gets what remains of the coordination phase as its deadline (a dependent starts later)."""

        async def execute(
            subtask: common_pb2.Subtask, deps: list[common_pb2.SubtaskResult]
        ) -> common_pb2.SubtaskResult:
            timeout = max(0.0, coordination_ends - time.monotonic())
            request = worker_pb2.ExecuteRequest(objective=objective, subtask=subtask, dependencies=deps)
            try:
                with subtask_span(subtask):
                    # While the workers are known to serve, a call made as a connection is being re-established
                    # (connection age, a replica restarting) waits for it instead of failing at once; when they
                    # are down, it fails at once.
                    response = await self._downstream.worker.Execute(
                        request, timeout=timeout, wait_for_ready=self._downstream.serving
                    )
            except grpc.aio.AioRpcError as exc:
                outcome = TIMED_OUT if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else FAILED
                code, words = downstream_failure(exc)
                raise SubtaskFailed(f"{code.name}: {words}", code.name, outcome) from None
            return response.result

        return execute

    async def _synthesize(
        self, request: synthesizer_pb2.SynthesizeRequest, usages: list[common_pb2.Usage], context: RunContext
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        budget = phase_budget(self._settings.synthesis_timeout, context)
        call = self._downstream.synthesizer.Synthesize(request, timeout=budget, wait_for_ready=self._downstream.serving)
        try:
            async for chunk in call:
                if chunk.HasField("usage"):
                    usages.append(chunk.usage)
                else:
                    yield orchestrator_pb2.RunEvent(text_delta=chunk.text_delta)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PhaseFailed(exc.code(), f"synthesis timed out after {round(budget, 2):g} s") from None
            code, words = downstream_failure(exc)
            raise PhaseFailed(code, f"synthesis failed: {words}") from None
        finally:
            call.cancel()
