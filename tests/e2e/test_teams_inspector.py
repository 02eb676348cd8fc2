"""The inspector names each subtask's specialist and shows the tool calls it made: the offline research team's run,
in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import mint_token
from tests.support.browser import chromium
from tests.support.processes import process_mesh

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_the_inspector_shows_each_subtasks_specialist(tmp_path: Path) -> None:
    with process_mesh(tmp_path) as mesh:
        token = mint_token(mesh.jwt_secret, "teams-inspector")
        body = {"model": "agentmesh/research", "messages": [{"role": "user", "content": "Compare SQLite and Postgres"}]}
        response = httpx.post(
            f"{mesh.base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        assert response.status_code == 200, response.text
        run_id = response.json()["id"]
        expect.set_options(timeout=20_000)
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{mesh.base_url}/inspect")
            page.fill("#token", token)
            page.click("#token-form button[type=submit]")
            page.click(f'#runs tr[data-run-id="{run_id}"]')
            expect(page.locator("#run-title")).to_have_text(run_id)
            expect(page.locator("#plan li .agent")).to_have_count(3)
            agents = page.locator("#plan li .agent").evaluate_all("spans => spans.map(s => s.dataset.agent)")
            assert agents == ["analyst", "researcher", "writer"]
            specialists = page.locator("#usage tbody tr[data-specialist]").evaluate_all(
                "rows => rows.map(r => r.dataset.specialist)"
            )
            assert sorted(specialists) == ["analyst", "researcher", "writer"]
            labels = page.locator("#timeline text.row-label").all_text_contents()
            assert [label.split(" · ")[1] for label in labels if label.startswith("t")] == agents, labels
            # The researcher has the demo MCP server's tools: its bar and its plan entry show the calls it made.
            researcher = page.locator('#plan li[data-subtask-id]:has(.agent[data-agent="researcher"])')
            subtask_id = researcher.get_attribute("data-subtask-id")
            on_bar = page.locator(f'#timeline text.bar-tools[data-subtask-id="{subtask_id}"]')
            expect(on_bar).to_have_attribute("data-tool-calls", "3")
            expect(on_bar).to_contain_text("⚙ 3 tools")  # the calls themselves are its tooltip
            calls = researcher.locator(".tool-calls li").all_text_contents()
            assert [c.split(" ")[:2] for c in calls] == [
                ["demo.lookup_fact", "ok"],
                ["demo.word_count", "ok"],
                ["demo.add", "ok"],
            ]
            assert page.locator("#timeline text.bar-tools").count() == 1  # the others have no tools
            page.close()
