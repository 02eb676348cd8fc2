"""The run inspector in a real headless Chromium, against the whole mesh (a fake Anthropic API behind it).

Runs are made through the gateway as any client would; the page is then loaded, given a token, and must draw
each run as the gateway recorded it, without a console error and without a request leaving the gateway's origin.
``INSPECTOR_SCREENSHOT=docs/inspect.png`` also writes the screenshot in docs/inspector.md and the README.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.e2e.conftest import mint_token
from tests.support.browser import chromium
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

# Generous: a browser, five processes and other suites share two cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

API_KEY = "sk-ant-inspector-fake-key"
SUBJECT = "inspector-user"
WAIT_MS = 20_000
FANOUT_PLAN = {
    "subtasks": [
        {"id": "paris", "title": "Describe Paris", "instruction": "Describe Paris for a visitor", "depends_on": []},
        {"id": "rome", "title": "Describe Rome", "instruction": "Describe Rome for a visitor", "depends_on": []},
        {"id": "lisbon", "title": "Describe Lisbon", "instruction": "Describe Lisbon for a visitor", "depends_on": []},
        {
            "id": "compare",
            "title": "Compare the three",
            "instruction": "Compare the three cities for a first trip",
            "depends_on": ["paris", "rome", "lisbon"],
        },
    ]
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url, "RETRY_MAX_ATTEMPTS": "1"}
    with process_mesh(tmp_path_factory.mktemp("inspected-mesh"), env=env) as running:
        yield running


def _chat(mesh: ProcessMesh, content: str, stream: bool = False) -> str:
    """Makes a run; returns its id (the completion id)."""
    body: dict[str, Any] = {"model": "agentmesh", "stream": stream, "messages": [{"role": "user", "content": content}]}
    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret, SUBJECT)}"}
    response = httpx.post(f"{mesh.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    if not stream:
        return str(response.json()["id"])
    assert response.text.rstrip().endswith("data: [DONE]")
    return str(json.loads(response.text.split("\n")[0].removeprefix("data: "))["id"])


def _show(page: Page, run_id: str) -> None:
    page.click(f'#runs tr[data-run-id="{run_id}"]')
    expect(page.locator("#run-title")).to_have_text(run_id)


def _bars(page: Page) -> list[dict[str, Any]]:
    """Each subtask bar's id, outcome, class and horizontal extent, top to bottom."""
    result: list[dict[str, Any]] = page.locator("#timeline rect.subtask").evaluate_all(
        """bars => bars.map(bar => ({
            id: bar.dataset.subtaskId,
            outcome: bar.dataset.outcome,
            classes: [...bar.classList],
            start: bar.x.baseVal.value,
            end: bar.x.baseVal.value + bar.width.baseVal.value,
        }))"""
    )
    return result


def test_the_inspector_draws_each_run_as_recorded(mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    fake.control("POST", "reset")
    fake.control("POST", "default", {"latency_s": 0.15})
    fake.script(
        {"tool_input": FANOUT_PLAN, "match_text": "^Plan a first trip"},
        {"status": 400, "error_message": "this subtask is refused", "match_text": "^Subtask t2: Describe Bergen"},
        {"refuse_tool": True, "match_text": "^Anything at all"},
    )
    fanout = _chat(mesh, "Plan a first trip to Europe: Paris, Rome or Lisbon?", stream=True)
    failed = _chat(mesh, "Describe Oslo\nDescribe Bergen")
    fallback = _chat(mesh, "Anything at all, in one go")

    requests: list[str] = []
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto(f"{mesh.base_url}/inspect")
        page.fill("#token", mint_token(mesh.jwt_secret, SUBJECT))
        page.click("#token-form button[type=submit]")
        expect(page.locator("#runs tbody tr[data-run-id]")).to_have_count(3)
        rows = page.locator("#runs tbody tr").evaluate_all("rows => rows.map(row => row.dataset.runId)")
        assert rows == [fallback, failed, fanout]  # newest first

        _show(page, fanout)
        expect(page.locator("#timeline rect.subtask")).to_have_count(4)
        bars = {bar["id"]: bar for bar in _bars(page)}
        assert list(bars) == ["paris", "rome", "lisbon", "compare"]
        assert all(bar["outcome"] == "ok" and "outcome-ok" in bar["classes"] for bar in bars.values())
        # The dependent subtask starts after its three inputs end, and an arrow comes from each.
        assert bars["compare"]["start"] >= max(bars[sid]["end"] for sid in ("paris", "rome", "lisbon")) - 1
        arrows = page.locator("#timeline path.dependency")
        assert sorted(arrows.evaluate_all("paths => paths.map(p => p.dataset.from + '>' + p.dataset.to)")) == [
            "lisbon>compare",
            "paris>compare",
            "rome>compare",
        ]
        expect(page.locator('#timeline rect[data-phase="planning"]')).to_have_count(1)
        expect(page.locator('#timeline rect[data-phase="synthesis"]')).to_have_count(1)
        expect(page.locator("#usage tbody tr")).to_have_count(3)
        assert page.locator("#usage tbody tr").evaluate_all("rows => rows.map(r => r.dataset.agent)") == [
            "orchestrator",
            "worker",
            "synthesizer",
        ]
        expect(page.locator("#run-fallback")).to_be_hidden()
        screenshot = page.screenshot(full_page=True)

        _show(page, failed)
        expect(page.locator('#timeline rect[data-subtask-id="t2"]')).to_have_class("bar subtask outcome-failed")
        expect(page.locator('#timeline rect[data-subtask-id="t1"]')).to_have_class("bar subtask outcome-ok")
        expect(page.locator('#plan li[data-subtask-id="t2"] .reason')).to_contain_text("this subtask is refused")

        _show(page, fallback)
        expect(page.locator("#run-fallback")).to_be_visible()
        expect(page.locator("#run-fallback")).to_contain_text("Fallback plan: the planner gave no plan")
        expect(page.locator("#timeline rect.subtask")).to_have_count(1)
        expect(page.locator("#timeline rect.subtask")).to_have_class("bar subtask outcome-ok")

        _watch_a_run_in_progress(page, mesh, fake)
        page.close()

    assert not problems, problems
    origin = f"{mesh.base_url}/"
    assert requests and all(url.startswith(origin) for url in requests), requests
    _save_screenshot(screenshot)


def _watch_a_run_in_progress(page: Page, mesh: ProcessMesh, fake: FakeAnthropicProcess) -> None:
    """A run still going is listed, drawn with its subtask running, and redrawn as it finishes."""
    # Longer than the page's idle poll, so the page sees it listed while it runs.
    fake.script({"latency_s": 6.0, "match_text": "^Subtask t1: "})
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_chat, mesh, "Take your time", True)
        row = page.locator('#runs tr[data-status="in_progress"]')
        expect(row).to_have_count(1)
        row.click()
        expect(page.locator('#timeline rect[data-subtask-id="t1"]')).to_have_class("bar subtask outcome-running")
        expect(page.locator("#timeline line.now")).to_have_count(1)
        run_id = running.result(timeout=60)
    expect(page.locator("#run-title")).to_have_text(run_id)
    expect(page.locator('#timeline rect[data-subtask-id="t1"]')).to_have_class("bar subtask outcome-ok")
    expect(page.locator("#timeline line.now")).to_have_count(0)


def _save_screenshot(png: bytes) -> None:
    if target := os.environ.get("INSPECTOR_SCREENSHOT"):
        Path(target).write_bytes(png)
