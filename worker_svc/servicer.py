"""Worker.Execute: one subtask by the specialist it names (one model call, or a tool loop), its output and usage."""

from __future__ import annotations

import logging
import time

import grpc

from agentmesh import metrics
from agentmesh.cost_cap import fit_call
from agentmesh.llm.metered import outcome_of
from agentmesh.llm.pacing import watch_queue
from agentmesh.llm.provider import Prompt
from agentmesh.shared_prefix import RESPONSE_BEGUN
from agentmesh.teams.spec import AgentSpec
from agentmesh.tools import ToolDefinition
from agentmesh.usage import OutputCap, usage_message
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from worker_svc.agents import Served, Specialists
from worker_svc.queued import queued_notice
from worker_svc.settings import WorkerSettings
from worker_svc.task import build_prompt
from worker_svc.tool_loop import LoopResult, ToolLoop
from worker_svc.warm import complete_announcing

logger = logging.getLogger(__name__)


class WorkerServicer(worker_pb2_grpc.WorkerServicer):
    def __init__(self, specialists: Specialists, settings: WorkerSettings) -> None:
        self._specialists = specialists
        self._prices = settings.prices

    async def Execute(
        self,
        request: worker_pb2.ExecuteRequest,
        context: grpc.aio.ServicerContext[worker_pb2.ExecuteRequest, worker_pb2.ExecuteResponse],
    ) -> worker_pb2.ExecuteResponse:
        served = self._specialists.get(request.team, request.subtask.agent)
        spec = served.spec
        prompt = build_prompt(request, spec)
        definitions = self._specialists.toolbox.definitions(spec)
        if request.max_cost_usd > 0 and not definitions:
            prompt = fit_call(prompt, self._prices, request.max_cost_usd)
        started = time.monotonic()
        outcome = "ok"
        try:
            # A writer's one initial metadata is the warm-up's "response begun": it sends no queued notice.
            with watch_queue(None if request.warm else queued_notice(context)) as queue:
                result = await self._run(served, prompt, request, context, definitions)
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            metrics.specialist_subtasks.labels(spec.team, spec.name, outcome).inc()
            metrics.specialist_duration.labels(spec.team, spec.name).observe(time.monotonic() - started)
        duration_ms = int((time.monotonic() - started) * 1000)
        logger.info(
            "subtask done",
            extra={
                "subtask_id": request.subtask.id,
                "team": spec.team,
                "specialist": spec.name,
                "duration_ms": duration_ms,
                "model": result.usage.model,
                "model_turns": result.turns,
                "tool_calls": len(result.calls),
            },
        )
        reply = subtask_result(request.subtask.id, spec, result, duration_ms)
        reply.queued_ms = round(queue.waited_s * 1000)
        return worker_pb2.ExecuteResponse(result=reply)

    async def _run(
        self,
        served: Served,
        prompt: Prompt,
        request: worker_pb2.ExecuteRequest,
        context: grpc.aio.ServicerContext[worker_pb2.ExecuteRequest, worker_pb2.ExecuteResponse],
        definitions: list[ToolDefinition],
    ) -> LoopResult:
        """A tool loop when the specialist has tools its servers offer now (each turn fitted to the allotment);
        otherwise one model call, its prompt fitted already. A warm-up call announces when its response begins."""

        async def begun() -> None:
            await context.send_initial_metadata(((RESPONSE_BEGUN, "1"),))

        if definitions:
            if request.warm:
                await begun()  # a tool loop writes no shared cache entry: the others need not wait for it
            toolbox = self._specialists.toolbox
            loop = ToolLoop(served.provider, toolbox, served.spec, definitions, self._prices, request.max_cost_usd)
            return await loop.run(prompt)
        if request.warm:
            completion = await complete_announcing(served.provider, prompt, begun)
        else:
            completion = await served.provider.complete(prompt)
        return LoopResult(completion.text, completion.usage, None, 1, prompt.max_tokens, completion.stop_reason)


def subtask_result(subtask_id: str, spec: AgentSpec, result: LoopResult, duration_ms: int) -> common_pb2.SubtaskResult:
    """One Usage for the whole subtask (its turns summed; ``calls`` counts them), so the orchestrator settles the
    subtask's one reservation to what all of its turns cost; its max_tokens are those of the answer's call."""
    cap = OutputCap(result.max_tokens, spec.max_tokens)
    usage = usage_message("worker", result.usage, spec.name, cap, result.stop_reason)
    usage.calls = result.turns
    return common_pb2.SubtaskResult(
        subtask_id=subtask_id,
        output=result.text,
        usage=usage,
        duration_ms=duration_ms,
        model_turns=result.turns,
        tool_loop_end=result.end or "",
        tool_calls=[
            common_pb2.ToolCallRecord(
                server=call.server,
                tool=call.tool,
                duration_ms=round(call.duration_s * 1000),
                outcome=call.outcome,
                result_chars=call.result_chars,
                turn=call.turn,
            )
            for call in result.calls
        ],
    )
