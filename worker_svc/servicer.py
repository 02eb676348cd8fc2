"""Worker.Execute: one subtask, one LLM call by the specialist it names, its output and usage."""

from __future__ import annotations

import logging
import time

import grpc

from agentmesh import metrics
from agentmesh.cost_cap import fit_call
from agentmesh.llm.metered import outcome_of
from agentmesh.llm.pacing import watch_queue
from agentmesh.shared_prefix import RESPONSE_BEGUN
from agentmesh.usage import OutputCap, usage_message
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from worker_svc.agents import Specialists
from worker_svc.queued import queued_notice
from worker_svc.settings import WorkerSettings
from worker_svc.task import build_prompt
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
        if request.max_cost_usd > 0:
            prompt = fit_call(prompt, self._prices, request.max_cost_usd)
        started = time.monotonic()
        outcome = "ok"
        try:
            # A writer's one initial metadata is the warm-up's "response begun": it sends no queued notice.
            with watch_queue(None if request.warm else queued_notice(context)) as queue:
                if request.warm:
                    completion = await complete_announcing(
                        served.provider, prompt, lambda: context.send_initial_metadata(((RESPONSE_BEGUN, "1"),))
                    )
                else:
                    completion = await served.provider.complete(prompt)
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
                "model": completion.usage.model,
            },
        )
        return worker_pb2.ExecuteResponse(
            result=common_pb2.SubtaskResult(
                subtask_id=request.subtask.id,
                output=completion.text,
                usage=usage_message(
                    "worker",
                    completion.usage,
                    spec.name,
                    OutputCap(prompt.max_tokens, spec.max_tokens),
                    completion.stop_reason,
                ),
                duration_ms=duration_ms,
                queued_ms=round(queue.waited_s * 1000),
            )
        )
