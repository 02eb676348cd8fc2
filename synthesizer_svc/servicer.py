"""Synthesizer.Synthesize: relays the model's stream as text deltas, then one usage chunk."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import grpc

from agentmesh.budget import fit_call
from agentmesh.llm.provider import LLMProvider, StreamDone, TextDelta
from agentmesh.usage import usage_message
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc
from synthesizer_svc.prompt import build_prompt
from synthesizer_svc.settings import SynthesizerSettings

logger = logging.getLogger(__name__)


class SynthesizerServicer(synthesizer_pb2_grpc.SynthesizerServicer):
    def __init__(self, provider: LLMProvider, settings: SynthesizerSettings) -> None:
        self._provider = provider
        self._settings = settings
        self._prices = settings.prices

    async def Synthesize(
        self,
        request: synthesizer_pb2.SynthesizeRequest,
        context: grpc.aio.ServicerContext[synthesizer_pb2.SynthesizeRequest, synthesizer_pb2.SynthesizeChunk],
    ) -> AsyncIterator[synthesizer_pb2.SynthesizeChunk]:
        prompt = build_prompt(request, self._settings.synthesizer_model, self._settings.synthesizer_max_tokens)
        if request.max_cost_usd > 0:
            prompt = fit_call(prompt, self._prices, request.max_cost_usd)
        started = time.monotonic()
        async for item in self._provider.stream(prompt):
            if isinstance(item, TextDelta):
                yield synthesizer_pb2.SynthesizeChunk(text_delta=item.text)
            elif isinstance(item, StreamDone):
                logger.info(
                    "synthesis done",
                    extra={
                        "duration_ms": int((time.monotonic() - started) * 1000),
                        "model": item.usage.model,
                        "results": len(request.results),
                        "failed": sum(1 for r in request.results if r.error),
                    },
                )
                yield synthesizer_pb2.SynthesizeChunk(usage=usage_message("synthesizer", item.usage))
