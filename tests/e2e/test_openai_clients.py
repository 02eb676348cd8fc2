"""A user's view: the official openai SDK and raw HTTP against all four services running as processes."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from agentmesh.llm.offline import LABEL
from tests.support.processes import ProcessMesh

pytestmark = pytest.mark.e2e


def _client(mesh: ProcessMesh, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mesh.base_url}/v1", api_key=token, max_retries=0, timeout=60)


def test_openai_sdk_streams_an_answer_with_usage_and_per_agent_cost(mesh: ProcessMesh, token: str) -> None:
    stream = _client(mesh, token).chat.completions.create(
        model="agentmesh",
        messages=[{"role": "user", "content": "Describe Paris\nDescribe Rome"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith(LABEL)
    assert "Describe Paris" in content and "Describe Rome" in content
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    usage = usage_chunks[0].usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    extra = usage.model_extra or {}
    assert [a["agent"] for a in extra["agents"]] == ["orchestrator", "worker", "synthesizer"]
    assert extra["agents"][1]["calls"] == 2
    assert extra["cost_usd"] == 0.0  # the offline demo model is priced, at zero
    assert len({c.id for c in chunks}) == 1


def test_openai_sdk_non_streaming_answer(mesh: ProcessMesh, token: str) -> None:
    completion = _client(mesh, token).chat.completions.create(
        model="agentmesh", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    assert LABEL in (completion.choices[0].message.content or "")
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_raw_sse_has_progress_as_reasoning_content_and_ends_with_done(mesh: ProcessMesh, token: str) -> None:
    body = {"model": "agentmesh", "stream": True, "messages": [{"role": "user", "content": "a\nb\nc"}]}
    with httpx.stream(
        "POST",
        f"{mesh.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-raw-sse-1"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "e2e-raw-sse-1"
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    # One id for the whole response: the client's, made unique.
    (completion_id,) = {c["id"] for c in chunks}
    assert re.fullmatch(r"chatcmpl-e2e-raw-sse-1-[0-9a-f]{12}", completion_id), completion_id
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    progress = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks)
    assert "3 subtasks" in progress
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"]
        assert delta.get("reasoning_content") == delta.get("reasoning")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks)


def test_models_lists_the_service_model_first_then_one_per_team(mesh: ProcessMesh, token: str) -> None:
    models = _client(mesh, token).models.list()
    assert [m.id for m in models.data] == ["agentmesh", "agentmesh/research"]  # the shipped teams
    model = models.data[0]
    assert model.id == "agentmesh"
    assert model.owned_by == "agentmesh"


def test_requests_without_a_token_are_refused(mesh: ProcessMesh) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(mesh, "not-a-jwt").models.list()
