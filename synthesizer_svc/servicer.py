"""Synthesizer.Synthesize: relays the model's stream as text deltas, then one usage chunk.

Deltas that arrive while the previous chunk is being written go on as one chunk (``read_ahead``): a model that
streams faster than the call is written costs one message per write, not one per token.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import grpc

from agentmesh.cost_cap import fit_call
from agentmesh.llm.provider import LLMProvider, StreamDone, TextDelta
from agentmesh.read_ahead import read_ahead
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
        async with contextlib.aclosing(read_ahead(self._provider.stream(prompt))) as batches:
            async for items in batches:
                if text := "".join(item.text for item in items if isinstance(item, TextDelta)):
                    yield synthesizer_pb2.SynthesizeChunk(text_delta=text)
                for done in (item for item in items if isinstance(item, StreamDone)):
                    yield _usage_chunk(done, request, started)


def _usage_chunk(
    done: StreamDone, request: synthesizer_pb2.SynthesizeRequest, started: float
) -> synthesizer_pb2.SynthesizeChunk:
    logger.info(
        "synthesis done",
        extra={
            "duration_ms": int((time.monotonic() - started) * 1000),
            "model": done.usage.model,
            "results": len(request.results),
            "failed": sum(1 for r in request.results if r.error),
        },
    )
    return synthesizer_pb2.SynthesizeChunk(usage=usage_message("synthesizer", done.usage))
