"""The one place an LLM call becomes priced, counted and traced, whatever the provider behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agentmesh import metrics
from agentmesh.llm.pricing import PriceTable, cost_usd, price_for
from agentmesh.llm.provider import (
    InvalidResponse,
    LLMProvider,
    Prompt,
    ProviderError,
    Request,
    StreamDone,
    StreamItem,
    TextDelta,
    TokenUsage,
)
from agentmesh.llm.wrapper import R, WrapperProvider

tracer = trace.get_tracer("agentmesh.llm")


def outcome_of(exc: BaseException) -> str:
    """A bounded label: ok, cancelled, one of our provider error classes, or error."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    if isinstance(exc, ProviderError):
        return type(exc).__name__
    return "error"


class MeteredProvider(WrapperProvider):
    """Wraps a provider for one agent: prices each call's usage, records metrics and an ``llm.call`` span."""

    def __init__(self, inner: LLMProvider, agent: str, prices: PriceTable, known_models: Collection[str]) -> None:
        super().__init__(inner)
        self._agent = agent
        self._prices = prices
        self._known_models = {*known_models, *prices}

    def _label(self, model: str) -> str:
        """Models we price or were told about keep their id; anything else is ``other``."""
        if price_for(model, self._prices) is not None:
            return model
        return metrics.bounded(model, self._known_models)

    def _start(self, prompt: Request, operation: str) -> Span:
        """A client span in OpenTelemetry's GenAI conventions, so trace tools show it as a model call."""
        return tracer.start_span(
            f"llm.{operation}",
            kind=SpanKind.CLIENT,
            attributes={
                "agentmesh.agent": self._agent,
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self.name,
                # The older conventions' name for the provider, still read by some tools.
                "gen_ai.system": self.name,
                "gen_ai.request.model": prompt.model,
                "gen_ai.request.max_tokens": prompt.max_tokens,
            },
        )

    def _succeeded(
        self, span: Span, prompt: Request, usage: TokenUsage, stop_reason: str | None, started: float
    ) -> TokenUsage:
        priced = dataclasses.replace(usage, cost_usd=cost_usd(usage, self._prices))
        model = self._label(prompt.model)
        metrics.llm_calls.labels(self._agent, model, "ok").inc()
        metrics.llm_duration.labels(self._agent, model).observe(time.monotonic() - started)
        for direction, count in (
            ("input", priced.input_tokens),
            ("output", priced.output_tokens),
            ("cache_creation", priced.cache_creation_input_tokens),
            ("cache_read", priced.cache_read_input_tokens),
        ):
            metrics.llm_tokens.labels(self._agent, model, direction).inc(count)
        if priced.cost_usd is None:
            metrics.llm_unpriced_calls.labels(self._agent, model).inc()
        else:
            metrics.llm_cost.labels(self._agent, model).inc(priced.cost_usd)
        attributes: dict[str, Any] = {
            "gen_ai.response.model": priced.model,
            "gen_ai.usage.input_tokens": priced.input_tokens,
            "gen_ai.usage.output_tokens": priced.output_tokens,
            "agentmesh.usage.cache_creation_input_tokens": priced.cache_creation_input_tokens,
            "agentmesh.usage.cache_read_input_tokens": priced.cache_read_input_tokens,
            "agentmesh.priced": priced.cost_usd is not None,
        }
        if priced.cost_usd is not None:
            attributes["agentmesh.cost_usd"] = priced.cost_usd
        if stop_reason:
            attributes["gen_ai.response.finish_reasons"] = [stop_reason]
        span.set_attributes(attributes)
        span.end()
        return priced

    def _failed(self, span: Span, prompt: Request, exc: BaseException, started: float) -> None:
        outcome = outcome_of(exc)
        model = self._label(prompt.model)
        metrics.llm_calls.labels(self._agent, model, outcome).inc()
        metrics.llm_duration.labels(self._agent, model).observe(time.monotonic() - started)
        span.set_attribute("agentmesh.outcome", outcome)
        span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()

    async def around(self, prompt: Request, operation: str, call: Callable[[], Awaitable[R]]) -> R:
        span, started = self._start(prompt, operation), time.monotonic()
        try:
            with trace.use_span(span, end_on_exit=False):
                result = await call()
        except BaseException as exc:
            self._failed(span, prompt, exc, started)
            raise
        usage = self._succeeded(span, prompt, result.usage, result.stop_reason, started)
        return dataclasses.replace(result, usage=usage)

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        # The span is never made current here: a generator's context would leak into its consumer.
        span, started = self._start(prompt, "stream"), time.monotonic()
        first_token = True
        try:
            async for item in self.inner.stream(prompt):
                if isinstance(item, StreamDone):
                    usage = self._succeeded(span, prompt, item.usage, item.stop_reason, started)
                    done = dataclasses.replace(item, usage=usage)
                    break
                if first_token and isinstance(item, TextDelta):
                    first_token = False
                    elapsed = time.monotonic() - started
                    metrics.llm_first_token.labels(self._agent, self._label(prompt.model)).observe(elapsed)
                    span.add_event("first_token")
                yield item
            else:
                raise InvalidResponse("the model's stream ended without its usage")
        except BaseException as exc:
            self._failed(span, prompt, exc, started)
            raise
        # Outside the try: the call is over and its span ended; a consumer that stops here is no failure of it.
        yield done
