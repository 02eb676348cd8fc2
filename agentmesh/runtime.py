"""What every process runs on: the event loop it names (uvloop by default: less CPU per message on every hop, asyncio
on request), and a start-up heap the garbage collector no longer walks, off the request path."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

logger = logging.getLogger(__name__)

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


def freeze_startup_heap() -> None:
    """Call once the service is up: what is alive then (modules, SDK and proto types, clients; ~200k objects)
    lives as long as the process, so the collector should stop walking it.

    Without this every full collection walked all of it: a 100-170 ms pause in the middle of whichever call
    happened to allocate, seen as the worst worker start spread in ``make bench``. Collections of what requests
    allocate go on as before.
    """
    gc.collect()
    gc.freeze()
    logger.debug("start-up heap frozen", extra={"objects": gc.get_freeze_count()})
