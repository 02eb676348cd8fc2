"""Orchestrator.Run: plan, run the plan on workers, relay the synthesis, report the cost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from agentmesh import metrics
from agentmesh.cost_cap import SPENT_TRAILER, BudgetExceeded
from agentmesh.deadline import MARGIN_S, deadline_in, phase_timeout_s
from agentmesh.errors import InvalidInput, NotFound
from agentmesh.llm.provider import InvalidResponse, ProviderError
from agentmesh.read_ahead import read_ahead
from agentmesh.request_context import current_request_id, new_request_id
from agentmesh.rpc.errors import PhaseFailed, downstream_failure, status_for
from agentmesh.shared_prefix import worth_caching
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import AgentSpec, Team, Teams
from agentmesh.usage import OutputCap, summarize, usage_message
from agentmesh.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, synthesizer_pb2, worker_pb2
from orchestrator_svc.documents import check_documents
from orchestrator_svc.downstream import Downstream
from orchestrator_svc.observability import PhaseRecorder, subtask_span
from orchestrator_svc.planner import (
    Plan,
    cut_plan,
    fallback_plan,
    objective_text,
    plan_from_tool_input,
    plan_tool,
    planning_prompt,
    route,
)
from orchestrator_svc.queued import relay_queued
from orchestrator_svc.scheduler import (
    FAILED,
    OVER_BUDGET,
    TIMED_OUT,
    CoordinationTimeout,
    Execute,
    Scheduler,
    SubtaskFailed,
)
from orchestrator_svc.settings import OrchestratorSettings
from orchestrator_svc.spend import CostAllotter
from orchestrator_svc.warmup import Warmup

logger = logging.getLogger(__name__)

RunContext = grpc.aio.ServicerContext[orchestrator_pb2.RunRequest, orchestrator_pb2.RunEvent]


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self, teams: Teams, providers: TeamProviders, downstream: Downstream, settings: OrchestratorSettings
    ) -> None:
        self._teams = teams
        # Resolved now: a team's provider that cannot be built stops start-up, not a request.
        self._planners = {name: providers.for_agent(team.orchestrator) for name, team in teams.by_name.items()}
        self._downstream = downstream
        self._settings = settings
        self._prices = settings.prices

    async def Run(
        self, request: orchestrator_pb2.RunRequest, context: RunContext
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        metrics.runs_in_flight.inc()
        costs: CostAllotter | None = None
        try:
            team = self._team(request.team)
            costs = self._cost_allotter(request, team)
            async with contextlib.aclosing(self._run(request, team, costs, context)) as events:
                async for event in events:
                    yield event
        except Exception:
            if costs is not None and costs.capped:
                # For the caller's own spend limit (the gateway's daily one): what this failed run may have cost.
                spent = costs.ledger.spent + costs.ledger.reserved
                context.set_trailing_metadata(((SPENT_TRAILER, f"{spent:.17g}"),))
            raise
        finally:
            metrics.runs_in_flight.dec()

    async def _run(
        self, request: orchestrator_pb2.RunRequest, team: Team, costs: CostAllotter, context: RunContext
    ) -> AsyncGenerator[orchestrator_pb2.RunEvent, None]:
        recorder = PhaseRecorder()
        objective = objective_text(request.messages)
        check_documents(request.documents)
        with recorder.phase("planning"):
            plan, plan_usage = await self._plan(request, team, objective, costs, context)
        plan = route(plan, list(team.workers))
        if plan.repairs:
            logger.warning("plan routing repaired", extra={"team": team.name, "repairs": list(plan.repairs)})
        usages = [plan_usage] if plan_usage is not None else []
        fitted, left_out = costs.fit_or_fall_back(objective, plan, request.documents)
        if fitted is not plan:
            logger.warning("plan does not fit the cost cap, falling back", extra={"reason": fitted.fallback_reason})
            plan = route(fitted, list(team.workers))
        plan_event = orchestrator_pb2.RunEvent(
            plan=orchestrator_pb2.Plan(
                subtasks=plan.subtasks,
                fallback=bool(plan.fallback_reason),
                fallback_reason=plan.fallback_reason,
                usage=plan_usage,
                repairs=plan.repairs,
            )
        )
        recorder.planned(plan_event.plan)
        yield plan_event
        coordination_s = self._coordination_timeout_s(context)
        notices: asyncio.Queue[orchestrator_pb2.RunEvent] = asyncio.Queue()
        executor = self._executor(team, request, objective, time.monotonic() + coordination_s, costs, notices)
        scheduler = Scheduler(
            plan.subtasks,
            executor,
            notices=notices,
            fail_fast=self._settings.fail_fast,
            finish_on_timeout=self._settings.on_coordination_timeout == "synthesize",
            left_out=left_out,
        )
        try:
            with recorder.phase("coordination"):
                async with contextlib.aclosing(scheduler.run(coordination_s)) as events:
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
            max_output_tokens=costs.synthesizer.max_tokens,
            team=team.name,
        )
        with recorder.phase("synthesis"):
            async for event in self._synthesize(synthesis, usages, costs, context):
                yield event
        summary = summarize(usages)
        summary.durations.CopyFrom(recorder.durations())
        summary.max_cost_usd = costs.ledger.cap
        yield orchestrator_pb2.RunEvent(usage=summary)

    def _team(self, name: str) -> Team:
        team = self._teams.get(name)
        if team is None:
            raise NotFound(f"no team {name!r} in TEAMS_DIR (teams: {', '.join(self._teams.by_name)})")
        return team

    def _cost_allotter(self, request: orchestrator_pb2.RunRequest, team: Team) -> CostAllotter:
        """The run's ledger, priced with the team's own models; a request may lower the synthesizer's max_tokens,
        never raise it."""
        cap = request.max_cost_usd
        if not math.isfinite(cap) or cap < 0:
            raise InvalidInput("max_cost_usd must be a finite number of US dollars, 0 (no cap) or more")
        synthesizer, first = team.synthesizer, team.first_worker
        synthesis_tokens = min(request.max_output_tokens or synthesizer.max_tokens, synthesizer.max_tokens)
        return CostAllotter.create(
            cap,
            self._prices,
            worker=(first.model, first.max_tokens, first.prompt),
            synthesizer=(synthesizer.model, synthesis_tokens, synthesizer.prompt),
            specialists={name: (spec.model, spec.max_tokens, spec.prompt) for name, spec in team.workers.items()},
            documents=request.documents,
            prompt_cache=self._settings.prompt_cache,
        )

    async def _plan(
        self,
        request: orchestrator_pb2.RunRequest,
        team: Team,
        objective: str,
        costs: CostAllotter,
        context: RunContext,
    ) -> tuple[Plan, common_pb2.Usage | None]:
        settings = self._settings
        spec = team.orchestrator
        documents = request.documents
        prompt = planning_prompt(request.messages, spec.model, spec.max_tokens, spec.prompt, documents)
        tool = plan_tool(settings.max_subtasks, list(team.workers.values()), documents)
        reservation, prompt = costs.reserve_planning(prompt, tool, objective)
        usage: common_pb2.Usage | None = None
        timeout_s = phase_timeout_s(settings.planning_timeout, context)
        try:
            # The deadline also bounds the provider's retries: it gives up rather than wait past the phase.
            with deadline_in(timeout_s):
                async with asyncio.timeout(timeout_s):
                    call = await self._planners[team.name].call_tool(prompt, tool)
            usage = usage_message(
                "orchestrator",
                call.usage,
                cap=OutputCap(prompt.max_tokens, spec.max_tokens),
                stop_reason=call.stop_reason,
            )
        except TimeoutError:
            raise PhaseFailed(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"planning timed out after {round(timeout_s, 2):g} s"
            ) from None
        except InvalidResponse as exc:
            logger.warning("planner gave no usable plan, falling back", extra={"reason": str(exc)})
            return fallback_plan(objective, f"the planner gave no plan: {exc}", documents), None
        except ProviderError as exc:
            code, message = status_for(exc)
            raise PhaseFailed(code, f"planning failed: {message}") from None
        finally:
            costs.settle(reservation, usage)
        if usage.hit_max_tokens:  # whatever the input holds was cut off: a part of a plan is no plan
            plan = cut_plan(objective, prompt.max_tokens, usage.max_tokens_lowered_from, documents)
            logger.warning("plan cut short by its max_tokens, falling back", extra={"reason": plan.fallback_reason})
            return plan, usage
        plan = plan_from_tool_input(call.input, objective, settings.max_subtasks, call.fallback_reason, documents)
        if plan.fallback_reason != call.fallback_reason:  # the provider logs its own fallbacks, once
            logger.warning("plan rejected, falling back", extra={"reason": plan.fallback_reason})
        logger.info("planned", extra={"subtasks": len(plan.subtasks)})
        return plan, usage

    def _coordination_timeout_s(self, context: RunContext) -> float:
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

    def _caches(self, spec: AgentSpec, objective: str) -> bool:
        return self._settings.prompt_cache and worth_caching(spec.provider, spec.model, objective)

    def _executor(
        self,
        team: Team,
        run: orchestrator_pb2.RunRequest,
        objective: str,
        coordination_ends: float,
        costs: CostAllotter,
        notices: asyncio.Queue[orchestrator_pb2.RunEvent],
    ) -> Execute:
        """Each Execute gets what remains of the coordination phase as its deadline (a dependent starts later),
        and its worst case is reserved before it starts: a call the cap cannot cover ends over budget. A worker
        gets only its subtask's documents; when the prefix is worth caching, it waits for it to be warm. A worker
        that says its call waits for quota has the subtask reported queued in ``notices``."""
        documents = {document.id: document for document in run.documents}
        run_key = (current_request_id() or new_request_id())[:64]
        warmup = Warmup()

        async def execute(
            subtask: common_pb2.Subtask, deps: list[common_pb2.SubtaskResult]
        ) -> common_pb2.SubtaskResult:
            specialist = team.worker(subtask.agent) or team.first_worker
            if not self._caches(specialist, objective):
                return await send(subtask, deps, specialist, "", None)
            model_key = f"{specialist.provider}/{specialist.model}"
            begun = warmup.claim(model_key)
            if begun is None:
                await warmup.readable(model_key)
                return await send(subtask, deps, specialist, run_key, None)
            try:
                return await send(subtask, deps, specialist, run_key, begun)
            finally:
                begun.set()  # also when the writer failed before its response began: the others go on

        async def send(
            subtask: common_pb2.Subtask,
            deps: list[common_pb2.SubtaskResult],
            specialist: AgentSpec,
            cache_key: str,
            begun: asyncio.Event | None,
        ) -> common_pb2.SubtaskResult:
            try:
                reservation, max_tokens = costs.reserve_worker(objective, subtask, deps)
            except BudgetExceeded as exc:
                raise SubtaskFailed(str(exc), grpc.StatusCode.FAILED_PRECONDITION.name, OVER_BUDGET) from None
            timeout = max(0.0, coordination_ends - time.monotonic())
            if specialist.tools:
                costs.widen_for_tools(reservation, subtask, specialist.max_turns)
            target, worker = self._downstream.worker(specialist)
            request = worker_pb2.ExecuteRequest(
                team=team.name,
                objective=objective,
                subtask=subtask,
                dependencies=deps,
                max_output_tokens=max_tokens,
                max_cost_usd=reservation.amount,
                documents=[documents[d] for d in subtask.documents if d in documents],
                cache_key=cache_key,
                warm=begun is not None,
            )
            usage: common_pb2.Usage | None = None
            try:
                with subtask_span(subtask):
                    # While the workers are known to serve, a call made as a connection is being re-established
                    # (connection age, a replica restarting) waits for it instead of failing at once; when they
                    # are down, it fails at once.
                    call = worker.Execute(request, timeout=timeout, wait_for_ready=self._downstream.serving)
                    if begun is not None:
                        await call.initial_metadata()  # the prefix is readable: the others may start
                        begun.set()
                        response = await call
                    else:  # a writer sends no queued notice: its initial metadata means its response began
                        response = await relay_queued(call, subtask.id, notices)
                usage = response.result.usage
            except grpc.aio.AioRpcError as exc:
                code, words = downstream_failure(exc)
                if code == grpc.StatusCode.FAILED_PRECONDITION:  # the worker found the cap short: no call was made
                    reservation.release()
                    raise SubtaskFailed(f"left out: {words}", code.name, OVER_BUDGET) from None
                if code == grpc.StatusCode.NOT_FOUND:  # a routing mistake of the deployment: say where it went
                    reservation.release()
                    logger.error(
                        "no worker serves the specialist", extra={"specialist": specialist.name, "target": target}
                    )
                    words = f"specialist {specialist.name!r} of team {team.name!r} sent to {target}: {words}"
                outcome = TIMED_OUT if code == grpc.StatusCode.DEADLINE_EXCEEDED else FAILED
                raise SubtaskFailed(f"{code.name}: {words}", code.name, outcome) from None
            finally:
                costs.settle(reservation, usage)  # a call that ended without usage keeps its whole reservation
            return response.result

        return execute

    async def _synthesize(
        self,
        request: synthesizer_pb2.SynthesizeRequest,
        usages: list[common_pb2.Usage],
        costs: CostAllotter,
        context: RunContext,
    ) -> AsyncIterator[orchestrator_pb2.RunEvent]:
        timeout_s = phase_timeout_s(self._settings.synthesis_timeout, context)
        reservation = costs.reserve_synthesis()
        request.max_cost_usd = reservation.amount
        usage: common_pb2.Usage | None = None
        call = self._downstream.synthesizer.Synthesize(
            request, timeout=timeout_s, wait_for_ready=self._downstream.serving
        )
        try:
            # Deltas that arrive while the last event is being written go on as one (see agentmesh.read_ahead).
            async with contextlib.aclosing(read_ahead(aiter(call))) as batches:
                async for chunks in batches:
                    if text := "".join(chunk.text_delta for chunk in chunks if not chunk.HasField("usage")):
                        yield orchestrator_pb2.RunEvent(text_delta=text)
                    for chunk in chunks:
                        if chunk.HasField("usage"):
                            usage = chunk.usage
                            usages.append(chunk.usage)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PhaseFailed(exc.code(), f"synthesis timed out after {round(timeout_s, 2):g} s") from None
            code, words = downstream_failure(exc)
            raise PhaseFailed(code, f"synthesis failed: {words}") from None
        finally:
            call.cancel()
            costs.settle(reservation, usage)
