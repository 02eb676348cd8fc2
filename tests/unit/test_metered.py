"""The metering wrapper: every call priced from the table, counted in Prometheus, traced as a span."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentmesh import metrics
from agentmesh.llm import metered
from agentmesh.llm.metered import MeteredProvider
from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.pricing import ModelPrice
from agentmesh.llm.provider import Message, Prompt, RateLimited, StreamDone, StreamItem, TokenUsage, Tool, ToolCall

PRICES = {"agentmesh-offline-demo": ModelPrice(2.0, 10.0)}


def _prompt(model: str = "agentmesh-offline-demo") -> Prompt:
    return Prompt(model=model, system="", messages=[Message(role="user", content="hello there")], max_tokens=10)


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(metered, "tracer", provider.get_tracer("test"))
    yield exporter


def _attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_a_completion_is_priced_counted_and_traced(spans: InMemorySpanExporter) -> None:
    provider = MeteredProvider(OfflineProvider(), "worker", PRICES, known_models=["agentmesh-offline-demo"])
    labels = {"agent": "worker", "model": "agentmesh-offline-demo"}
    before_in = _sample("agentmesh_llm_tokens_total", direction="input", **labels)
    before_cost = _sample("agentmesh_llm_cost_usd_total", **labels)
    result = await provider.complete(_prompt())
    usage = result.usage
    assert usage.cost_usd == pytest.approx((usage.input_tokens * 2.0 + usage.output_tokens * 10.0) / 1e6)
    assert _sample("agentmesh_llm_tokens_total", direction="input", **labels) - before_in == usage.input_tokens
    assert _sample("agentmesh_llm_cost_usd_total", **labels) - before_cost == pytest.approx(usage.cost_usd)
    (span,) = spans.get_finished_spans()
    assert span.name == "llm.complete"
    assert _attributes(span)["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert _attributes(span)["agentmesh.agent"] == "worker"


async def test_an_unpriced_model_is_reported_unpriced_and_its_label_is_bounded() -> None:
    provider = MeteredProvider(OfflineProvider(), "worker", {}, known_models=[])
    before = _sample("agentmesh_llm_unpriced_calls_total", agent="worker", model="other")
    result = await provider.complete(_prompt(model="some-typo-model"))
    assert result.usage.cost_usd is None
    assert _sample("agentmesh_llm_unpriced_calls_total", agent="worker", model="other") - before == 1


class _Failing:
    name = "failing"

    async def complete(self, prompt: Prompt) -> object:
        raise RateLimited("slow down", retryable=True)

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        raise RateLimited("slow down", retryable=True)

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        raise RateLimited("slow down", retryable=True)
        yield StreamDone(TokenUsage(model="x"))  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


async def test_a_failed_call_is_counted_by_outcome_and_marked_on_its_span(spans: InMemorySpanExporter) -> None:
    provider = MeteredProvider(_Failing(), "synthesizer", PRICES, known_models=["m"])  # type: ignore[arg-type]
    before = _sample("agentmesh_llm_calls_total", agent="synthesizer", model="m", outcome="RateLimited")
    with pytest.raises(RateLimited):
        async for _ in provider.stream(_prompt(model="m")):
            pass
    assert _sample("agentmesh_llm_calls_total", agent="synthesizer", model="m", outcome="RateLimited") - before == 1
    (span,) = spans.get_finished_spans()
    assert not span.status.is_ok


async def test_a_stream_records_time_to_first_token_and_priced_usage(spans: InMemorySpanExporter) -> None:
    provider = MeteredProvider(OfflineProvider(), "synthesizer", PRICES, known_models=[])
    labels = {"agent": "synthesizer", "model": "agentmesh-offline-demo"}
    before = _sample("agentmesh_llm_time_to_first_token_seconds_count", **labels)
    items = [item async for item in provider.stream(_prompt())]
    assert isinstance(items[-1], StreamDone) and items[-1].usage.cost_usd is not None
    assert _sample("agentmesh_llm_time_to_first_token_seconds_count", **labels) - before == 1
    (span,) = spans.get_finished_spans()
    assert [e.name for e in span.events] == ["first_token"]


async def test_a_consumer_that_stops_after_the_usage_leaves_the_call_a_success(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller may go away once it has the usage (a cancelled write of the last chunk): the span is ended once."""
    provider = MeteredProvider(OfflineProvider(), "synthesizer", PRICES, known_models=["agentmesh-offline-demo"])
    labels = {"agent": "synthesizer", "model": "agentmesh-offline-demo"}
    cancelled_before = _sample("agentmesh_llm_calls_total", outcome="cancelled", **labels)
    items = provider.stream(_prompt())
    async for item in items:
        if isinstance(item, StreamDone):
            break
    await items.aclose()  # type: ignore[attr-defined]
    (span,) = spans.get_finished_spans()
    assert span.status.is_ok
    assert _sample("agentmesh_llm_calls_total", outcome="cancelled", **labels) == cancelled_before
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


async def test_every_kind_of_call_is_a_client_span_in_the_genai_conventions(spans: InMemorySpanExporter) -> None:
    provider = MeteredProvider(OfflineProvider(), "orchestrator", PRICES, known_models=[])
    tool = Tool(name="plan", description="plan", input_schema={"type": "object", "properties": {}})
    await provider.complete(_prompt())
    await provider.call_tool(_prompt(), tool)
    [item async for item in provider.stream(_prompt())]
    finished = spans.get_finished_spans()
    assert [span.name for span in finished] == ["llm.complete", "llm.tool", "llm.stream"]
    for span, finish_reason in zip(finished, ["stop", "tool_call", "stop"], strict=True):
        attributes = _attributes(span)
        assert span.kind == SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "offline"
        assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "agentmesh-offline-demo"
        assert attributes["gen_ai.request.max_tokens"] == 10
        assert attributes["gen_ai.response.finish_reasons"] == (finish_reason,)
        assert isinstance(attributes["gen_ai.usage.input_tokens"], int)
        assert isinstance(attributes["gen_ai.usage.output_tokens"], int)


async def test_results_keep_their_stop_reason_through_the_wrapper() -> None:
    provider = MeteredProvider(OfflineProvider(), "worker", PRICES, known_models=[])
    assert (await provider.complete(_prompt())).stop_reason == "stop"
    items = [item async for item in provider.stream(_prompt())]
    assert isinstance(items[-1], StreamDone) and items[-1].stop_reason == "stop"
