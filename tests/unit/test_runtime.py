"""What every process runs on: the event loop EVENT_LOOP names, tracing only once spans have somewhere to go, and
a start-up heap the garbage collector no longer walks."""

from __future__ import annotations

import asyncio
import gc

import pytest
import uvloop

from agentmesh import runtime, telemetry
from agentmesh.settings import CommonSettings


@pytest.mark.parametrize(("name", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_the_process_runs_on_the_loop_event_loop_names(name: runtime.EventLoopName, loop_type: type) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    runtime.run(main(), name)
    assert isinstance(seen[0], loop_type)
    if name == "asyncio":
        assert not isinstance(seen[0], uvloop.Loop)


def test_event_loop_defaults_to_uvloop_and_refuses_other_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CommonSettings().event_loop == "uvloop"
    monkeypatch.setenv("EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        CommonSettings()


@pytest.mark.parametrize(
    "env",
    [
        {},  # the default: no endpoint, so no span would ever leave the process
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_without_an_endpoint_no_tracing_is_installed(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert telemetry.configure_tracing("worker", CommonSettings()) is None
    assert telemetry.server_tracer() is None
    assert telemetry.client_interceptors() == []


def test_freezing_the_start_up_heap_keeps_it_out_of_collections() -> None:
    """What exists at start-up is frozen (collections stop walking it); what requests allocate later is not."""

    class Client:
        pass

    start_up_object = Client()
    try:
        runtime.freeze_startup_heap()
        request_object = Client()
        walked = gc.get_objects()
        assert not any(o is start_up_object for o in walked)
        assert any(o is request_object for o in walked)
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
