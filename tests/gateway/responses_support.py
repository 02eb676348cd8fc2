"""Reading Responses bodies in tests: OpenAI's vendored Responses schemas, and SSE frames as the gateway sends them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.gateway.test_openai_schema import json_schema

SPEC_FILE = Path(__file__).resolve().parents[1] / "schemas" / "openai_openapi_responses.json"
SPEC_URI = "urn:openai-openapi-responses"
# Each event type we send and the schema OpenAI publishes for it.
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryTextDeltaEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryTextDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.failed": "ResponseFailedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
}
_registry: Registry | None = None


def registry() -> Registry:
    global _registry
    if _registry is None:
        spec = json_schema(json.loads(SPEC_FILE.read_text()))
        _registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))
    return _registry


def check(schema_name: str, body: Any) -> None:
    reference = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft202012Validator(reference, registry=registry())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{schema_name} violated by {json.dumps(body)[:500]}:\n" + "\n".join(errors)


def check_response(body: Any) -> None:
    check("Response", body)


def check_event(event: Any) -> None:
    """The event against its own schema and against the union of all stream events."""
    check(EVENT_SCHEMAS[event["type"]], event)
    check("ResponseStreamEvent", event)


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, each checked to carry its type as the SSE event name."""
    events = []
    for frame in text.split("\n\n"):
        lines = frame.strip().splitlines()
        names = [line[7:] for line in lines if line.startswith("event: ")]
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if data:
            event = json.loads(data[0])
            assert names == [event["type"]]
            events.append(event)
    return events
