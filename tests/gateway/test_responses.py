"""The Responses API through uvicorn with the official SDK: streamed and not, background runs polled, resumed and
cancelled, conversations carried on, and every body checked against OpenAI's published schemas."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import httpx
import openai
import pytest

from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    RunEvent,
    mint_token,
    play,
    usage_event,
)
from tests.gateway.responses_support import check_event, check_response, sse_events

RESPONSE = {"model": MODEL, "input": "Say hello"}


async def post(gateway: Gateway, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    async with gateway.http(token) as client:
        return await client.post("/v1/responses", json=body)


async def read_stream(gateway: Gateway, path: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    async with gateway.http() as client:
        response = await (client.post(path, json=body) if body is not None else client.get(path))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


async def test_a_streamed_response_gives_the_answer_chat_gives(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        stream = await client.responses.create(model=MODEL, input="Say hello", stream=True)
        events = [event async for event in stream]
        chat = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello"}])
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == chat.choices[0].message.content == "Hello, world"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.in_progress"
    assert events[-1].type == "response.completed"
    final = events[-1].response
    assert final.output_text == "Hello, world" and final.status == "completed"
    progress = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert progress.startswith("Plan: 2 subtasks") and "✓ Research the topic done in 1.2 s" in progress
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (65, 27)
    assert (final.usage.model_extra or {})["cost_usd"] == pytest.approx(0.0045)


async def test_every_event_and_object_matches_openais_schemas(gateway: Gateway, fake: FakeOrchestrator) -> None:
    events = await read_stream(gateway, "/v1/responses", {**RESPONSE, "stream": True})
    for event in events:
        check_event(event)
    assert {e["type"] for e in events} >= {
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed", "response.reasoning_summary_text.delta",
    }  # fmt: skip
    created = await post(gateway, RESPONSE)
    check_response(created.json())
    async with gateway.http() as client:
        check_response((await client.get(f"/v1/responses/{created.json()['id']}")).json())
    fake.script = play(HAPPY_RUN[:3], fail_with=(grpc.StatusCode.UNAVAILABLE, "coordination: workers unavailable"))
    failed = await read_stream(gateway, "/v1/responses", {**RESPONSE, "stream": True})
    for event in failed:
        check_event(event)
    assert failed[-1]["type"] == "response.failed"
    assert failed[-1]["response"]["error"]["message"] == "coordination: workers unavailable"


async def test_a_response_without_stream_is_the_whole_response(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        response = await client.responses.create(model=MODEL, input="Say hello", metadata={"case": "one"})
        again = await client.responses.retrieve(response.id)
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == "Hello, world" and response.metadata == {"case": "one"}
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert again.model_dump() == response.model_dump()


async def test_a_background_response_is_polled_until_completed(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=1)
    async with gateway.openai() as client:
        created = await client.responses.create(model=MODEL, input="Say hello", background=True)
        assert created.status == "in_progress" and created.background is True
        await fake.started.wait()
        assert (await client.responses.retrieve(created.id)).status == "in_progress"
        fake.release.set()
        stream = await client.responses.retrieve(created.id, stream=True)
        async for _ in stream:
            pass  # until the run ends
        done = await client.responses.retrieve(created.id)
    assert done.status == "completed" and done.output_text == "Hello, world"
    assert done.usage is not None and done.usage.total_tokens == 92


async def test_a_dropped_background_stream_resumes_after_sequence_n(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=5)
    async with gateway.openai() as client:
        stream = await client.responses.create(model=MODEL, input="Say hello", background=True, stream=True)
        seen = []
        async for event in stream:
            seen.append(event)
            if event.type == "response.reasoning_summary_text.delta":
                break  # the client drops the connection here
        await stream.close()
        response_id = seen[0].response.id
        fake.release.set()
        resumed = await client.responses.retrieve(response_id, stream=True, starting_after=seen[-1].sequence_number)
        rest = [event async for event in resumed]
        whole = [event async for event in await client.responses.retrieve(response_id, stream=True)]
    assert not fake.cancelled.is_set()
    numbers = [event.sequence_number for event in seen + rest]
    assert numbers == list(range(len(numbers)))
    assert [e.model_dump() for e in seen + rest] == [e.model_dump() for e in whole]
    assert rest[-1].type == "response.completed"


async def test_cancel_stops_the_run_and_is_idempotent(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=2)
    async with gateway.openai() as client:
        created = await client.responses.create(model=MODEL, input="Say hello", background=True)
        following = await client.responses.retrieve(created.id, stream=True)
        async for event in following:
            if event.type == "response.reasoning_summary_text.delta":
                break  # the run has made progress: the plan
        await following.close()
        cancelled = await client.responses.cancel(created.id)
        await asyncio.wait_for(fake.cancelled.wait(), timeout=5)
        again = await client.responses.cancel(created.id)
        read = await client.responses.retrieve(created.id)
        finished = await client.responses.create(model=MODEL, input="hi", background=True)
    assert cancelled.status == again.status == read.status == "cancelled"
    assert [item.type for item in cancelled.output] == ["reasoning"]  # what it had produced
    assert cancelled.model_dump() == read.model_dump()
    check_response(read.model_dump(mode="json", exclude_unset=True))
    fake.release.set()
    async with gateway.openai() as client:
        async for _ in await client.responses.retrieve(finished.id, stream=True):
            pass
        done = await client.responses.retrieve(finished.id)
        assert (await client.responses.cancel(finished.id)).model_dump() == done.model_dump()


async def test_previous_response_id_carries_the_conversation(gateway: Gateway, fake: FakeOrchestrator) -> None:
    async with gateway.openai() as client:
        first = await client.responses.create(model=MODEL, input="Say hello", instructions="Be brief")
        await client.responses.create(model=MODEL, input="And again?", previous_response_id=first.id)
    turns = [(m.role, m.content) for m in fake.requests[-1].messages]
    assert turns == [("user", "Say hello"), ("assistant", "Hello, world"), ("user", "And again?")]
    assert next((m.role, m.content) for m in fake.requests[0].messages) == ("system", "Be brief")


async def test_another_subjects_response_does_not_exist(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=1)
    async with gateway.openai(mint_token("alice")) as alice, gateway.openai(mint_token("mallory")) as mallory:
        created = await alice.responses.create(model=MODEL, input="Say hello", background=True)
        calls = [
            mallory.responses.retrieve(created.id),
            mallory.responses.cancel(created.id),
            mallory.responses.delete(created.id),
            mallory.responses.create(model=MODEL, input="more", previous_response_id=created.id),
        ]
        for call in calls:
            with pytest.raises(openai.NotFoundError) as caught:
                await call
            assert created.id in caught.value.message
        assert (await alice.responses.retrieve(created.id)).status == "in_progress"
        fake.release.set()


async def test_delete_forgets_a_response(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        created = await client.responses.create(model=MODEL, input="Say hello")
        await client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(created.id)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({**RESPONSE, "model": "gpt-nothing"}, 404, "model"),
        ({**RESPONSE, "background": True, "store": False}, 400, "background"),
        ({**RESPONSE, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, 400, None),
        ({**RESPONSE, "input": [{"role": "assistant", "content": "no user turn"}]}, 400, "input"),
        ({**RESPONSE, "previous_response_id": "resp_nothing"}, 404, "previous_response_id"),
        ({**RESPONSE, "stream": "yes"}, 422, "stream"),
    ],
)
async def test_bad_requests_get_openai_errors(
    gateway: Gateway, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = await post(gateway, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    if status == 404 and param == "model":
        assert error["code"] == "model_not_found"


async def test_store_false_is_not_kept(gateway: Gateway) -> None:
    async with gateway.openai() as client:
        response = await client.responses.create(model=MODEL, input="Say hello", store=False)
        assert response.output_text == "Hello, world"
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(response.id)


async def test_a_foreground_stream_whose_client_leaves_is_cancelled(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=2)
    response_id = None
    async with gateway.http() as client, client.stream("POST", "/v1/responses", json={**RESPONSE, "stream": True}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: ") and response_id is None:
                response_id = json.loads(line[len("data: ") :])["response"]["id"]
            if "reasoning_summary_text.delta" in line:
                break
    await asyncio.wait_for(fake.cancelled.wait(), timeout=5)
    async with gateway.openai() as sdk:
        stored = await sdk.responses.retrieve(response_id)
    assert stored.status == "cancelled"


async def test_starting_a_response_spends_the_run_budget(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(rate_limit_chat_completions="1/minute")
    async with gateway.http() as client:
        chat = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        )
        refused = await client.post("/v1/responses", json=RESPONSE)
        polled = await client.get("/v1/responses/resp_unknown")
    assert chat.status_code == 200 and refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert polled.status_code == 404  # polls spend the default budget, not the run budget


async def test_a_background_stream_whose_client_leaves_runs_on(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=2)
    body = {**RESPONSE, "stream": True, "background": True}
    async with gateway.http() as client, client.stream("POST", "/v1/responses", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                response_id = json.loads(line[len("data: ") :])["response"]["id"]
                break
    fake.release.set()
    async with gateway.openai() as client:
        async for _ in await client.responses.retrieve(response_id, stream=True):
            pass
        done = await client.responses.retrieve(response_id)
    assert done.status == "completed" and not fake.cancelled.is_set()


async def test_background_runs_hold_their_slots(start_gateway: GatewayFactory, fake: FakeOrchestrator) -> None:
    gateway = await start_gateway(max_concurrent_streams_per_user=2, max_background_runs_per_user=1)
    fake.script = play(HAPPY_RUN, wait_after=1)
    first = await post(gateway, {**RESPONSE, "background": True})
    second = await post(gateway, {**RESPONSE, "background": True})
    assert first.status_code == 200 and second.status_code == 429
    assert second.json()["error"]["code"] == "too_many_background_runs"
    async with gateway.http() as client, client.stream("POST", "/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}) as open_chat:  # fmt: skip
        assert open_chat.status_code == 200
        third = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_concurrent_requests"
        fake.release.set()
        await open_chat.aread()
    async with gateway.openai() as client:
        async for _ in await client.responses.retrieve(first.json()["id"], stream=True):
            pass
    assert (await post(gateway, {**RESPONSE, "background": True})).status_code == 200


async def test_a_background_run_that_fails_reads_failed(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(
        [RunEvent(text_delta="Hel")], fail_with=(grpc.StatusCode.DEADLINE_EXCEEDED, "synthesis timed out")
    )
    async with gateway.openai() as client:
        created = await client.responses.create(model=MODEL, input="Say hello", background=True)
        async for _ in await client.responses.retrieve(created.id, stream=True):
            pass
        failed = await client.responses.retrieve(created.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.message == "synthesis timed out"


async def test_a_run_refused_before_its_first_byte_gives_its_slot_back(
    start_gateway: GatewayFactory, fake: FakeOrchestrator
) -> None:
    gateway = await start_gateway(max_concurrent_streams_per_user=1)
    fake.script = play([], fail_with=(grpc.StatusCode.UNAVAILABLE, "planning: model unavailable"))
    refused = [await post(gateway, {**RESPONSE, "stream": stream}) for stream in (True, True, False, False)]
    assert [r.status_code for r in refused] == [503] * 4
    fake.script = play(HAPPY_RUN)
    assert (await post(gateway, {**RESPONSE, "stream": True})).status_code == 200


async def test_an_answer_cut_at_its_max_tokens_is_incomplete(gateway: Gateway, fake: FakeOrchestrator) -> None:
    usage = usage_event()
    for row in usage.usage.by_agent:
        row.hit_max_tokens = row.agent == "synthesizer"
    fake.script = play([*HAPPY_RUN[:-1], usage])
    events = await read_stream(gateway, "/v1/responses", {**RESPONSE, "stream": True, "max_output_tokens": 5})
    for event in events:
        check_event(event)
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][-1]["status"] == "incomplete" and final["output"][-1]["content"][0]["text"] == "Hello, world"
    async with gateway.openai() as client:
        stored = await client.responses.retrieve(final["id"])
    assert stored.status == "incomplete" and stored.output_text == "Hello, world"
