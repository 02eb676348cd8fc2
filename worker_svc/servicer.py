"""Worker.Execute: one subtask, one LLM call, its output and usage."""

from __future__ import annotations

import logging
import time

import grpc

from agentmesh.cost_cap import fit_call
from agentmesh.llm.provider import LLMProvider
from agentmesh.usage import usage_message
from agentmesh.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from worker_svc.settings import WorkerSettings
from worker_svc.task import build_prompt

logger = logging.getLogger(__name__)


class WorkerServicer(worker_pb2_grpc.WorkerServicer):
    def __init__(self, provider: LLMProvider, settings: WorkerSettings) -> None:
        self._provider = provider
        self._settings = settings
        self._prices = settings.prices

    async def Execute(
        self,
        request: worker_pb2.ExecuteRequest,
        context: grpc.aio.ServicerContext[worker_pb2.ExecuteRequest, worker_pb2.ExecuteResponse],
    ) -> worker_pb2.ExecuteResponse:
        prompt = build_prompt(request, self._settings.worker_model, self._settings.worker_max_tokens)
        if request.max_cost_usd > 0:
            prompt = fit_call(prompt, self._prices, request.max_cost_usd)
        started = time.monotonic()
        completion = await self._provider.complete(prompt)
        duration_ms = int((time.monotonic() - started) * 1000)
        logger.info(
            "subtask done",
            extra={"subtask_id": request.subtask.id, "duration_ms": duration_ms, "model": completion.usage.model},
        )
        return worker_pb2.ExecuteResponse(
            result=common_pb2.SubtaskResult(
                subtask_id=request.subtask.id,
                output=completion.text,
                usage=usage_message("worker", completion.usage),
                duration_ms=duration_ms,
            )
        )
