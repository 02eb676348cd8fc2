"""``make run`` with no key: the offline model drives the research team's researcher through a real tool loop on
the repository's demo MCP server (a stdio child of the worker), visible in the progress and the run record."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.conftest import mint_token
from tests.support.processes import ProcessMesh

QUESTION = "Compare SQLite and PostgreSQL for a small web app"


def test_the_offline_researcher_calls_the_demo_server_s_tools_and_the_progress_names_them(mesh: ProcessMesh) -> None:
    headers = {"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"}
    body = {"model": "agentmesh/research", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{mesh.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200
        chunks: list[dict[str, Any]] = [
            json.loads(line.removeprefix("data: "))
            for line in r.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    progress = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"])
    assert "(tools: demo.lookup_fact ok" in progress, progress
    answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert answer.startswith("[offline demo model]")

    run = httpx.get(f"{mesh.base_url}/v1/runs/{chunks[0]['id']}", headers=headers, timeout=10).json()
    [researcher] = [s for s in run["subtasks"] if s["agent"] == "researcher"]
    calls = [(c["server"], c["tool"], c["outcome"], c["turn"]) for c in researcher["tool_calls"]]
    assert calls == [("demo", "lookup_fact", "ok", 1), ("demo", "word_count", "ok", 1), ("demo", "add", "ok", 1)]
    assert researcher["tool_loop_end"] == "answered"
    assert all(not s["tool_calls"] for s in run["subtasks"] if s["agent"] != "researcher")  # they have no tools
