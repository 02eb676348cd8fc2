"""Which event loop every process runs: uvloop by default (less CPU per message on every hop), asyncio on request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal

EventLoopName = Literal["uvloop", "asyncio"]


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, None], name: EventLoopName) -> None:
    """``asyncio.run`` on the chosen loop (Python 3.11's ``asyncio.run`` takes no loop factory)."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        runner.run(main)
