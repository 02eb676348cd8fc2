"""A 256-subtask plan end to end: streamed to an OpenAI client, paced on a rate-limited model API, and drawn by
the inspector in a real headless Chromium (docs/fan-outs.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, expect

from tests.e2e.conftest import mint_token
from tests.support.browser import chromium
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

# Generous: a browser, five processes and other suites share two cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

API_KEY = "sk-ant-big-fanout-fake-key"
SUBJECT = "fanout-user"
SUBTASKS = 256
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "MAX_SUBTASKS": str(SUBTASKS),
        "ORCHESTRATOR_MAX_TOKENS": "16000",  # a plan of 256 subtasks written out is about 8,600 tokens
        "WORKER_COORDINATION_TIMEOUT": "90",
        "REQUEST_TIMEOUT": "150",
    }
    with process_mesh(tmp_path_factory.mktemp("big-fanout"), env=env) as running:
        yield running


def _stream(mesh: ProcessMesh, content: str) -> list[dict[str, Any]]:
    body = {
        "model": "agentmesh",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": content}],
    }
    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret, SUBJECT)}"}
    chunks: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{mesh.base_url}/v1/chat/completions", json=body, headers=headers, timeout=170) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                chunks.append(json.loads(line.removeprefix("data: ")) if line != "data: [DONE]" else {"done": True})
    return chunks


def test_a_256_subtask_plan_runs_streams_in_batches_and_draws_in_the_inspector(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    # 64 calls at once, refilled at 64 a second: the fan-out has to wait for quota, briefly.
    fake.control("POST", "reset")
    fake.rate_limit(64, 64)
    request = "\n".join(f"Summarise section {n} of the report" for n in range(1, SUBTASKS + 1))
    chunks = _stream(mesh, request)

    assert chunks[-1] == {"done": True} and not any("error" in chunk for chunk in chunks)
    usage = chunks[-2]["usage"]
    assert usage["failed_subtasks"] == []
    worker = next(agent for agent in usage["agents"] if agent["agent"] == "worker")
    assert worker["calls"] == SUBTASKS
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks[:-2]]
    progress = [delta["reasoning_content"] for delta in deltas if "reasoning_content" in delta]
    assert progress[0].startswith(f"Plan: {SUBTASKS} subtasks") and f"… and {SUBTASKS - 16} more" in progress[0]
    # Batched: a summary at most once a second, not a line per subtask.
    assert 2 <= len(progress) <= 40, progress
    assert progress[-1].startswith(f"Progress: {SUBTASKS}/{SUBTASKS} done")
    assert fake.state()["rate_limited"] <= 5
    run_id = chunks[0]["id"]

    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret, SUBJECT)}"}
    run = httpx.get(f"{mesh.base_url}/v1/runs/{run_id}", headers=headers, timeout=10).json()
    assert len(run["subtasks"]) == SUBTASKS and {s["outcome"] for s in run["subtasks"]} == {"ok"}
    queued = [s for s in run["subtasks"] if s["queued_ms"]]
    assert queued  # 256 calls on a bucket of 64: some waited, and the record says how long

    _inspect(mesh, run_id, len(queued))


def _inspect(mesh: ProcessMesh, run_id: str, queued: int) -> None:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto(f"{mesh.base_url}/inspect")
        page.fill("#token", mint_token(mesh.jwt_secret, SUBJECT))
        page.click("#token-form button[type=submit]")
        page.click(f'#runs tr[data-run-id="{run_id}"]')
        expect(page.locator("#run-title")).to_have_text(run_id)
        bars = page.locator("#timeline rect.subtask")
        expect(bars).to_have_count(SUBTASKS)
        expect(page.locator("#timeline")).to_have_class("compact")
        expect(page.locator("#timeline rect.queued-part")).to_have_count(queued)
        layout = page.evaluate(
            """() => {
                const frame = document.querySelector(".timeline-frame");
                const bars = [...document.querySelectorAll("#timeline rect.subtask")];
                const boxes = bars.map(bar => bar.getBoundingClientRect());
                return {
                    frameHeight: frame.clientHeight,
                    scrollHeight: frame.scrollHeight,
                    viewport: window.innerHeight,
                    heights: boxes.map(box => box.height),
                    tops: boxes.map(box => box.top),
                };
            }"""
        )
        page.close()
    assert not problems, problems
    # The timeline scrolls in its frame instead of stretching the page: the frame stays within the window.
    assert layout["frameHeight"] <= layout["viewport"] < layout["scrollHeight"]
    # Every bar is drawn at a readable height, one row below the other, none overlapping.
    assert min(layout["heights"]) >= 8
    gaps = [b - a for a, b in zip(layout["tops"], layout["tops"][1:], strict=False)]
    assert min(gaps) >= min(layout["heights"])
