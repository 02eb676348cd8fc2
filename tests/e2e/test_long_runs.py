"""Long runs through the real processes: a gateway that is told to stop drains its streams instead of cutting them."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-e2e-long-runs-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "SHUTDOWN_DRAIN_DELAY": "2",
        "SHUTDOWN_GRACE_PERIOD": "3",
    }
    with process_mesh(tmp_path_factory.mktemp("long-runs"), env=env) as running:
        yield running


def _open_stream(stack: ExitStack, mesh: ProcessMesh, text: str) -> Iterator[str]:
    body = {"model": "agentmesh", "stream": True, "messages": [{"role": "user", "content": text}]}
    response = stack.enter_context(
        httpx.stream(
            "POST",
            f"{mesh.base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
            timeout=60,
        )
    )
    assert response.status_code == 200
    return response.iter_lines()


def _until_content(lines: Iterator[str]) -> None:
    for line in lines:
        if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
            return
    raise AssertionError("the stream ended before any answer text")


def _rest(lines: Iterator[str]) -> list[dict[str, Any] | str]:
    return [json.loads(line[6:]) if line != "data: [DONE]" else line for line in lines if line.startswith("data: ")]


def test_sigterm_drains_and_ends_every_open_stream_with_an_error_event_and_done(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    fake.control("POST", "default", {"stream_hold_s": 60})  # every synthesis streams for a minute
    with ExitStack() as stack:
        streams = [_open_stream(stack, mesh, f"Describe city {n}") for n in range(3)]
        for lines in streams:
            _until_content(lines)
        mesh.gateway.process.send_signal(signal.SIGTERM)
        # Still accepting (this very request got in), but no longer ready.
        ready = httpx.get(f"{mesh.base_url}/health/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "draining"
        endings = [_rest(lines) for lines in streams]
    for ending in endings:
        assert ending[-1] == "data: [DONE]"
        error = ending[-2]
        assert isinstance(error, dict)
        assert error["error"]["code"] == "shutting_down"
        assert error["error"]["type"] == "service_unavailable_error"
    assert mesh.gateway.process.wait(15) in (0, -signal.SIGTERM)
    fake.wait_for_state(in_flight=0, within_s=5)  # the syntheses were cancelled upstream, not left running
    completed = [r for r in mesh.gateway.log_records() if r.get("event") == "request completed"]
    assert [r["outcome"] for r in completed].count("shutdown") == 3
    for record in completed:
        agents = {a["agent"] for a in record["agents"]}  # what was spent is logged, though no summary came
        assert {"orchestrator", "worker"} <= agents
