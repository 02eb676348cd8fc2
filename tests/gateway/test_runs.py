"""GET /v1/runs and /v1/runs/{id}: a caller's own runs as they happen, and the /inspect page's files."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest

from agentmesh.v1 import common_pb2, orchestrator_pb2
from gateway.edge.identity import subject_key
from gateway.http.security_headers import INSPECTOR_CSP
from tests.gateway.conftest import (
    HAPPY_RUN,
    MODEL,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    RunEvent,
    mint_token,
    plan_event,
    play,
    usage_event,
)

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


async def _complete(gateway: Gateway, subject: str = "tester") -> str:
    async with gateway.http(mint_token(subject)) as client:
        response = await client.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def _get(gateway: Gateway, path: str, subject: str = "tester") -> httpx.Response:
    async with gateway.http(mint_token(subject)) as client:
        return await client.get(path)


async def test_a_finished_run_shows_its_plan_timeline_usage_and_outcome(gateway: Gateway) -> None:
    run_id = await _complete(gateway)
    listing = (await _get(gateway, "/v1/runs")).json()
    assert listing["object"] == "list"
    (summary,) = listing["data"]
    assert (summary["id"], summary["status"], summary["subtasks_count"]) == (run_id, "ok", 2)
    assert summary["cost_usd"] == pytest.approx(0.0045)

    response = await _get(gateway, f"/v1/runs/{run_id}")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    run = response.json()
    assert run["object"] == "run" and run["status"] == "ok" and run["error"] is None
    assert run["request_id"] == run_id.removeprefix("chatcmpl-")
    assert run["subject"] == subject_key("tester")
    assert [(s["id"], s["depends_on"], s["outcome"]) for s in run["subtasks"]] == [
        ("t1", [], "ok"),
        ("t2", ["t1"], "ok"),
    ]
    for subtask in run["subtasks"]:
        assert 0 <= subtask["started_ms"] <= subtask["finished_ms"] <= run["duration_ms"]
    assert run["subtasks"][0]["finished_ms"] <= run["subtasks"][1]["started_ms"]
    assert run["subtasks"][0]["instruction"] == "research"
    assert run["plan"] == {"fallback": False, "fallback_reason": None}
    assert set(run["phases"]) == {"planning", "coordination", "synthesis"}
    assert run["usage"]["cost_usd"] == pytest.approx(0.0045)
    assert [a["agent"] for a in run["usage"]["agents"]] == ["orchestrator", "worker", "synthesizer"]


async def test_callers_see_only_their_own_runs_newest_first(gateway: Gateway) -> None:
    first = await _complete(gateway, "alice")
    theirs = await _complete(gateway, "bob")
    second = await _complete(gateway, "alice")
    assert [r["id"] for r in (await _get(gateway, "/v1/runs", "alice")).json()["data"]] == [second, first]
    assert [r["id"] for r in (await _get(gateway, "/v1/runs", "bob")).json()["data"]] == [theirs]
    assert (await _get(gateway, "/v1/runs", "carol")).json() == {"object": "list", "data": []}

    # Another caller's run is answered exactly like one that does not exist.
    other = await _get(gateway, f"/v1/runs/{first}", "bob")
    missing = await _get(gateway, "/v1/runs/chatcmpl-nope", "bob")
    assert other.status_code == missing.status_code == 404

    def shape(response: httpx.Response, run_id: str) -> dict[str, Any]:
        body = response.json()
        body["error"]["message"] = body["error"]["message"].replace(run_id, "<id>")
        return {"body": body, "headers": sorted(k for k in response.headers if k not in ("date", "x-request-id"))}

    assert shape(other, first) == shape(missing, "chatcmpl-nope")
    assert other.json()["error"]["code"] == "run_not_found"


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/runs/chatcmpl-x"])
async def test_runs_need_a_valid_token(gateway: Gateway, path: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        missing = await client.get(path)
        forged = await client.get(path, headers={"Authorization": f"Bearer {mint_token(secret='x' * 40)}"})
    for response in (missing, forged):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


async def test_a_run_in_progress_is_shown_as_it_goes(gateway: Gateway, fake: FakeOrchestrator) -> None:
    fake.script = play(HAPPY_RUN, wait_after=3)  # plan, t1 started, t1 finished; then waits
    async with (
        gateway.http() as client,
        client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as response,
    ):
        lines = response.aiter_lines()
        run_id = ""
        async for line in lines:
            if line.startswith("data: {"):
                chunk = json.loads(line.removeprefix("data: "))
                run_id = chunk["id"]
                if "done in" in (chunk["choices"][0]["delta"].get("reasoning_content") or ""):
                    break  # the gateway relays an event after recording it: t1's end is in the record
        run = (await client.get(f"/v1/runs/{run_id}")).json()
        assert run["status"] == "in_progress"
        assert [(s["id"], s["outcome"]) for s in run["subtasks"]] == [("t1", "ok"), ("t2", "pending")]
        assert run["phases"]["coordination"]["finished_ms"] is None and "synthesis" not in run["phases"]
        assert [r["status"] for r in (await client.get("/v1/runs")).json()["data"]] == ["in_progress"]
        fake.release.set()
        assert "data: [DONE]" in [line async for line in lines]
    run = (await _get(gateway, f"/v1/runs/{run_id}")).json()
    assert run["status"] == "ok" and [s["outcome"] for s in run["subtasks"]] == ["ok", "ok"]


async def test_a_failed_run_records_the_phase_and_the_message(gateway: Gateway, fake: FakeOrchestrator) -> None:
    started = RunEvent(subtask_started=orchestrator_pb2.SubtaskStarted(subtask_id="t1"))
    message = "worker coordination timed out after 45 s with 2 of 2 subtasks unfinished"
    fake.script = play([plan_event(), started], fail_with=(grpc.StatusCode.DEADLINE_EXCEEDED, message))
    async with gateway.http() as client:
        response = await client.post("/v1/chat/completions", json=BODY)
        assert response.status_code == 504
        (summary,) = (await client.get("/v1/runs")).json()["data"]
        run = (await client.get(f"/v1/runs/{summary['id']}")).json()
    assert run["status"] == "error"
    assert run["error"] == {"phase": "coordination", "code": "deadline_exceeded", "message": message}
    assert [(s["id"], s["outcome"]) for s in run["subtasks"]] == [("t1", "cancelled"), ("t2", "not_run")]


async def test_a_fallback_plan_and_a_failed_subtask_are_recorded(gateway: Gateway, fake: FakeOrchestrator) -> None:
    plan = orchestrator_pb2.Plan(
        subtasks=[common_pb2.Subtask(id="t1", title="Everything", instruction="hi")],
        fallback=True,
        fallback_reason="the planner gave no plan: refused",
    )
    failed = orchestrator_pb2.SubtaskFinished(
        subtask_id="t1", error="INTERNAL: boom", outcome=common_pb2.SUBTASK_OUTCOME_FAILED
    )
    fake.script = play([RunEvent(plan=plan), RunEvent(subtask_finished=failed), usage_event()])
    run_id = await _complete(gateway)
    run = (await _get(gateway, f"/v1/runs/{run_id}")).json()
    assert run["plan"] == {"fallback": True, "fallback_reason": "the planner gave no plan: refused"}
    (subtask,) = run["subtasks"]
    assert (subtask["outcome"], subtask["error"]) == ("failed", "INTERNAL: boom")
    assert run["usage"]["failed_subtasks"] == [{"id": "t1", "outcome": "failed", "reason": "INTERNAL: boom"}]


async def test_the_history_keeps_run_history_size_runs(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(run_history_size=2)
    ids = [await _complete(gateway) for _ in range(3)]
    assert [r["id"] for r in (await _get(gateway, "/v1/runs")).json()["data"]] == ids[:0:-1]
    assert (await _get(gateway, f"/v1/runs/{ids[0]}")).status_code == 404


async def test_the_inspector_page_is_served_with_a_strict_policy(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        page = await client.get("/inspect")
        script = await client.get("/inspect/inspect.js")
        style = await client.get("/inspect/inspect.css")
        unknown = await client.get("/inspect/secrets.txt")
        head = await client.head("/inspect")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == INSPECTOR_CSP
    assert "'unsafe-inline'" not in INSPECTOR_CSP and "script-src 'self'" in INSPECTOR_CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script src=" in page.text and "<style" not in page.text and " style=" not in page.text
    assert script.headers["content-type"].startswith("text/javascript") and "fetch(" in script.text
    assert style.headers["content-type"].startswith("text/css")
    assert unknown.status_code == 404
    assert head.status_code == 200 and head.headers["content-security-policy"] == INSPECTOR_CSP
