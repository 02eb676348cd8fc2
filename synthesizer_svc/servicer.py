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
from agentmesh.errors import NotFound
from agentmesh.llm.provider import StreamDone, TextDelta
from agentmesh.read_ahead import read_ahead
from agentmesh.teams.providers import TeamProviders
from agentmesh.teams.spec import Teams
from agentmesh.usage import OutputCap, usage_message
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc
from synthesizer_svc.prompt import build_prompt
from synthesizer_svc.settings import SynthesizerSettings

logger = logging.getLogger(__name__)


class SynthesizerServicer(synthesizer_pb2_grpc.SynthesizerServicer):
    def __init__(self, teams: Teams, providers: TeamProviders, settings: SynthesizerSettings) -> None:
        self._teams = teams
        # Resolved now: a team's provider that cannot be built stops start-up, not a request.
        self._providers = {name: providers.for_agent(team.synthesizer) for name, team in teams.by_name.items()}
        self._prices = settings.prices

    async def Synthesize(
        self,
        request: synthesizer_pb2.SynthesizeRequest,
        context: grpc.aio.ServicerContext[synthesizer_pb2.SynthesizeRequest, synthesizer_pb2.SynthesizeChunk],
    ) -> AsyncIterator[synthesizer_pb2.SynthesizeChunk]:
        team = self._teams.get(request.team)
        if team is None:
            raise NotFound(f"no team {request.team!r} in TEAMS_DIR (teams: {', '.join(self._teams.by_name)})")
        prompt = build_prompt(request, team.synthesizer)
        wanted = prompt.max_tokens
        if request.max_cost_usd > 0:
            # What the run's cap has left when the synthesis' turn comes: the answer may be shorter than configured.
            prompt = fit_call(prompt, self._prices, request.max_cost_usd)
        cap = OutputCap(prompt.max_tokens, wanted)
        started = time.monotonic()
        async with contextlib.aclosing(read_ahead(self._providers[team.name].stream(prompt))) as batches:
            async for items in batches:
                if text := "".join(item.text for item in items if isinstance(item, TextDelta)):
                    yield synthesizer_pb2.SynthesizeChunk(text_delta=text)
                for done in (item for item in items if isinstance(item, StreamDone)):
                    yield _usage_chunk(done, request, cap, started)


def _usage_chunk(
    done: StreamDone, request: synthesizer_pb2.SynthesizeRequest, cap: OutputCap, started: float
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
    return synthesizer_pb2.SynthesizeChunk(usage=usage_message("synthesizer", done.usage, "", cap, done.stop_reason))
