"""The Toolbox against real MCP servers the tests start: ours over stdio and streamable HTTP, and mcp-server-time."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.metrics import REGISTRY
from agentmesh.teams.spec import AgentSpec, TeamError
from agentmesh.tools import Toolbox, ToolSettings
from tests.support.mcp_servers import (
    HttpDemo,
    demo_stdio,
    http_demo,
    journal_events,
    specialist,
    time_server,
    until,
)
from tests.support.processes import free_port

FAST = ToolSettings(mcp_reconnect_backoff_initial=0.2, mcp_reconnect_backoff_max=1.0, mcp_connect_timeout=20)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "stdio-journal.jsonl"


@pytest.fixture
def http(tmp_path: Path) -> Iterator[HttpDemo]:
    with http_demo(tmp_path) as server:
        yield server


async def opened(*specs: AgentSpec, settings: ToolSettings = FAST, **kwargs: object) -> Toolbox:
    return await Toolbox.open(specs, settings, **kwargs)  # type: ignore[arg-type]


async def stats(toolbox: Toolbox, spec: AgentSpec, server: str, **arguments: object) -> dict[str, int]:
    outcome = await toolbox.call(spec, f"{server}__stats", arguments, timeout_s=10)
    assert outcome.outcome == "ok", outcome
    result: dict[str, int] = json.loads(outcome.text)
    return result


def calls_counted(server: str, tool: str, outcome: str) -> float:
    labels = {"server": server, "tool": tool, "outcome": outcome}
    return REGISTRY.get_sample_value("agentmesh_tool_calls_total", labels) or 0.0


async def test_one_session_per_server_serves_many_concurrent_calls_over_stdio_http_and_mcp_server_time(
    journal: Path, http: HttpDemo
) -> None:
    spec = specialist(demo_stdio(journal), http.spec(), time_server())
    toolbox = await opened(spec)
    try:
        assert toolbox.readiness() == {"demo": "", "web": "", "time": ""}
        names = {d.model_name for d in toolbox.definitions(spec)}
        assert {"demo__add", "web__add", "time__get_current_time", "time__convert_time"} <= names
        calls = [toolbox.call(spec, f"{s}__add", {"a": i, "b": 1}, 10) for i in range(20) for s in ("demo", "web")]
        outcomes = await asyncio.gather(*calls)
        assert [o.outcome for o in outcomes] == ["ok"] * 40
        assert sorted(float(o.text) for o in outcomes) == sorted(float(i + 1) for i in range(20) for _ in range(2))
        now = await toolbox.call(spec, "time__get_current_time", {"timezone": "Europe/Paris"}, 10)
        assert now.outcome == "ok" and "Europe/Paris" in now.text
    finally:
        await toolbox.aclose()
    assert len(journal_events(journal, "started")) == 1
    assert len(journal_events(journal, "initialize")) == 1
    assert len(journal_events(journal, "call")) == 20
    assert len(journal_events(http.journal, "initialize")) == 1
    assert len(journal_events(http.journal, "call")) == 20


async def test_the_definitions_are_the_allow_listed_tools_and_a_tool_off_the_list_is_refused(journal: Path) -> None:
    spec = specialist(demo_stdio(journal), tools=("demo.add", "demo.stats"))
    toolbox = await opened(spec)
    try:
        (add, stats_tool) = sorted(toolbox.definitions(spec), key=lambda d: d.tool)
        assert (add.server, add.tool, add.model_name) == ("demo", "add", "demo__add")
        assert set(add.input_schema["properties"]) == {"a", "b"} and add.description == "Add two numbers."
        assert stats_tool.model_name == "demo__stats"
        before = calls_counted("demo", "*", "refused")
        refused = await toolbox.call(spec, "demo__word_count", {"text": "the server offers it"}, 10)
        assert (refused.outcome, refused.is_error, refused.server, refused.tool) == (
            "refused",
            True,
            "demo",
            "word_count",
        )
        unknown = await toolbox.call(spec, "shell__run", {"command": "rm -rf /"}, 10)
        assert unknown.outcome == "refused" and "not a tool this specialist may use" in unknown.text
        assert calls_counted("demo", "*", "refused") == before + 1
        assert (await stats(toolbox, spec, "demo"))["call"] == 1  # only stats itself reached the server
    finally:
        await toolbox.aclose()


async def test_a_raising_tool_and_an_is_error_result_come_back_as_errors_with_their_message(journal: Path) -> None:
    spec = specialist(demo_stdio(journal))
    toolbox = await opened(spec)
    try:
        raised = await toolbox.call(spec, "demo__fail", {"message": "the database is on fire"}, 10)
        assert (raised.outcome, raised.is_error) == ("error", True)
        assert "the database is on fire" in raised.text
        flagged = await toolbox.call(spec, "demo__error_result", {"message": "no such row"}, 10)
        assert (flagged.outcome, flagged.text) == ("error", "no such row")
        bad_arguments = await toolbox.call(spec, "demo__add", {"a": "one"}, 10)
        assert bad_arguments.outcome == "error"
        ok = await toolbox.call(spec, "demo__word_count", {"text": "still works after errors"}, 10)
        assert (ok.outcome, ok.text) == ("ok", "4")
    finally:
        await toolbox.aclose()


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_hanging_tool_times_out_and_the_server_sees_the_cancellation(
    journal: Path, request: pytest.FixtureRequest, transport: str
) -> None:
    server = demo_stdio(journal) if transport == "stdio" else request.getfixturevalue("http").spec()
    spec = specialist(server)
    toolbox = await opened(spec)
    try:
        started = time.monotonic()
        hung = await toolbox.call(spec, f"{server.name}__hang", {}, timeout_s=0.5)
        assert (hung.outcome, hung.is_error) == ("timeout", True)
        assert time.monotonic() - started < 5
        seen = await stats(toolbox, spec, server.name, wait_for="hang_cancelled", at_least=1)
        assert seen["cancelled_notification"] == 1 and seen["hang_cancelled"] == 1
        assert (await toolbox.call(spec, f"{server.name}__add", {"a": 1, "b": 1}, 10)).text == "2.0"
    finally:
        await toolbox.aclose()


async def test_a_cancelled_caller_cancels_the_call_on_the_server(journal: Path) -> None:
    spec = specialist(demo_stdio(journal))
    toolbox = await opened(spec)
    try:
        call = asyncio.create_task(toolbox.call(spec, "demo__hang", {}, timeout_s=60))
        await stats(toolbox, spec, "demo", wait_for="hang_started", at_least=1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        seen = await stats(toolbox, spec, "demo", wait_for="hang_cancelled", at_least=1)
        assert seen["cancelled_notification"] == 1 and seen["hang_cancelled"] == 1
    finally:
        await toolbox.aclose()


async def test_a_changed_tool_list_is_fetched_again(journal: Path) -> None:
    spec = specialist(demo_stdio(journal))
    toolbox = await opened(spec)
    try:
        assert "demo__extra" not in {d.model_name for d in toolbox.definitions(spec)}
        assert (await toolbox.call(spec, "demo__grow", {}, 10)).outcome == "ok"
        await until(toolbox, lambda: "demo__extra" in {d.model_name for d in toolbox.definitions(spec)})
        extra = await toolbox.call(spec, "demo__extra", {}, 10)
        assert (extra.outcome, extra.text) == ("ok", "extra is here")
    finally:
        await toolbox.aclose()
    assert len(journal_events(journal, "initialize")) == 1


async def test_a_long_result_is_capped_for_the_model_and_its_size_reported(journal: Path) -> None:
    spec = specialist(demo_stdio(journal))
    toolbox = await opened(spec, settings=ToolSettings(max_tool_result_chars=1000))
    try:
        big = await toolbox.call(spec, "demo__big", {"chars": 50_000}, 10)
        assert big.outcome == "ok" and big.result_chars == 50_000
        assert len(big.text) <= 1000 and big.text.startswith("xxx")
        assert big.text.endswith("[result cut: 1000 of 50000 characters shown]")
    finally:
        await toolbox.aclose()


async def test_a_killed_stdio_server_fails_fast_is_named_by_readiness_then_restarted(journal: Path) -> None:
    spec = specialist(demo_stdio(journal))
    toolbox = await opened(spec, settings=ToolSettings(mcp_reconnect_backoff_initial=1.0))
    try:
        pid = (await stats(toolbox, spec, "demo"))["pid"]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        lost = await toolbox.call(spec, "demo__add", {"a": 1, "b": 2}, timeout_s=30)
        assert (lost.outcome, lost.is_error) == ("unavailable", True)
        assert time.monotonic() - started < 5  # not the 30 s timeout
        assert toolbox.readiness()["demo"] != ""
        again = await toolbox.call(spec, "demo__add", {"a": 1, "b": 2}, timeout_s=30)
        assert again.outcome == "unavailable" and "unavailable" in again.text
        await until(toolbox, lambda: toolbox.readiness()["demo"] == "")
        back = await toolbox.call(spec, "demo__add", {"a": 1, "b": 2}, timeout_s=30)
        assert (back.outcome, back.text) == ("ok", "3.0")
        assert (await stats(toolbox, spec, "demo"))["pid"] != pid
        assert toolbox.sessions() == {"demo": 2}
    finally:
        await toolbox.aclose()
    assert len(journal_events(journal, "started")) == 2


async def test_a_killed_http_server_is_noticed_while_idle_fails_fast_and_comes_back_with_it(http: HttpDemo) -> None:
    spec = specialist(http.spec())
    toolbox = await opened(spec, settings=ToolSettings(mcp_check_interval=0.5, mcp_reconnect_backoff_initial=0.2))
    try:
        http.kill()
        await until(toolbox, lambda: toolbox.readiness()["web"] != "")  # no call needed: the idle check saw it
        started = time.monotonic()
        lost = await toolbox.call(spec, "web__add", {"a": 1, "b": 2}, timeout_s=30)
        assert lost.outcome == "unavailable" and time.monotonic() - started < 5
        http.start()
        await until(toolbox, lambda: toolbox.readiness()["web"] == "")
        back = await toolbox.call(spec, "web__add", {"a": 1, "b": 2}, timeout_s=30)
        assert (back.outcome, back.text) == ("ok", "3.0")
    finally:
        await toolbox.aclose()


async def test_a_server_down_at_start_up_does_not_stop_it_and_is_named(tmp_path: Path) -> None:
    nobody = HttpDemo(port=free_port(), journal=tmp_path / "j.jsonl")  # a free port: nothing listens there
    spec = specialist(nobody.spec())
    toolbox = await opened(spec)
    try:
        assert toolbox.readiness()["web"].startswith("reconnecting in")
        assert toolbox.definitions(spec) == []
        refused = await toolbox.call(spec, "web__add", {"a": 1, "b": 2}, 10)
        assert refused.outcome == "unavailable"
    finally:
        await toolbox.aclose()


async def test_stdio_children_stop_when_the_toolbox_closes(journal: Path) -> None:
    spec = specialist(demo_stdio(journal), time_server())
    toolbox = await opened(spec)
    pid = (await stats(toolbox, spec, "demo"))["pid"]
    await toolbox.aclose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert toolbox.readiness() == {}


async def test_a_stdio_server_gets_the_variables_env_names_and_no_others(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "s3cret-value")
    monkeypatch.setenv("UNLISTED_TOKEN", "other")
    spec = specialist(demo_stdio(journal, env=("DEMO_TOKEN",)))
    toolbox = await opened(spec)
    try:
        given = await toolbox.call(spec, "demo__env_var", {"name": "DEMO_TOKEN"}, 10)
        assert given.text == "set, 12 characters"
        withheld = await toolbox.call(spec, "demo__env_var", {"name": "UNLISTED_TOKEN"}, 10)
        assert withheld.text == "unset"
    finally:
        await toolbox.aclose()


async def test_a_missing_variable_or_one_name_for_two_servers_stops_start_up(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_TOKEN", raising=False)
    with pytest.raises(TeamError, match=r"w\.md: field 'mcp_servers': server 'demo' needs .* DEMO_TOKEN"):
        await opened(specialist(demo_stdio(journal, env=("DEMO_TOKEN",))))
    one, other = specialist(demo_stdio(journal), name="a"), specialist(time_server("demo"), name="b")
    with pytest.raises(TeamError, match=r"b\.md: field 'mcp_servers': server 'demo' is configured differently"):
        await opened(one, other)


async def test_an_empty_toolbox_has_no_tools_and_refuses_calls() -> None:
    toolbox = Toolbox()
    spec = specialist()
    assert toolbox.definitions(spec) == [] and toolbox.readiness() == {}
    assert (await toolbox.call(spec, "demo__add", {}, 1)).outcome == "refused"
    await toolbox.aclose()


async def test_each_call_counts_in_the_metrics_and_has_an_execute_tool_span(journal: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spec = specialist(demo_stdio(journal), tools=("demo.add", "demo.fail"))
    wide = specialist(demo_stdio(journal), name="wide")
    toolbox = await opened(spec, wide, tracer_provider=provider)
    try:
        ok_before, error_before = calls_counted("demo", "add", "ok"), calls_counted("demo", "fail", "error")
        star_before = calls_counted("demo", "*", "ok")
        await toolbox.call(spec, "demo__add", {"a": 1, "b": 2}, 10, call_id="toolu_1")
        await toolbox.call(spec, "demo__fail", {"message": "no"}, 10)
        await toolbox.call(wide, "demo__word_count", {"text": "a b"}, 10)
        assert calls_counted("demo", "add", "ok") == ok_before + 1
        assert calls_counted("demo", "fail", "error") == error_before + 1
        assert calls_counted("demo", "*", "ok") == star_before + 1  # server.*: the tool is not a label value
    finally:
        await toolbox.aclose()
    spans = {span.name: span for span in exporter.get_finished_spans() if span.name.startswith("execute_tool")}
    assert set(spans) == {"execute_tool add", "execute_tool fail", "execute_tool word_count"}
    add = spans["execute_tool add"].attributes or {}
    assert add["gen_ai.operation.name"] == "execute_tool" and add["gen_ai.tool.name"] == "add"
    assert add["gen_ai.tool.call.id"] == "toolu_1" and add["agentmesh.tool.outcome"] == "ok"
    assert (spans["execute_tool fail"].attributes or {})["error.type"] == "error"


async def test_no_argument_result_or_secret_reaches_the_logs_even_at_debug(
    journal: Path, http: HttpDemo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "tok-Zq81-very-secret")
    caplog.set_level(logging.DEBUG)
    spec = specialist(demo_stdio(journal, env=("DEMO_TOKEN",)), http.spec(headers=(("X-Token", "DEMO_TOKEN"),)))
    toolbox = await opened(spec, settings=ToolSettings(max_tool_result_chars=500))
    try:
        for server in ("demo", "web"):
            counted = await toolbox.call(spec, f"{server}__word_count", {"text": "argument-words-Kx7 " * 3}, 10)
            assert counted.text == "3"
            big = await toolbox.call(spec, f"{server}__big", {"chars": 5000}, 10)
            assert big.result_chars == 5000
        assert (await toolbox.call(spec, "demo__env_var", {"name": "DEMO_TOKEN"}, 10)).outcome == "ok"
    finally:
        await toolbox.aclose()
    assert caplog.records  # the capture works: the session's own lines are there
    assert "tok-Zq81" not in caplog.text and "argument-words-Kx7" not in caplog.text and "x" * 100 not in caplog.text
