"""read_ahead: what arrives while the consumer is busy goes on as one batch; nothing held back, lost or left running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from agentmesh.read_ahead import read_ahead

END = object()


class Source:
    """An async iterator fed by the test: ``put`` an item, ``END``, or an exception to raise."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.cancelled = False

    async def items(self) -> AsyncIterator[str]:
        try:
            while True:
                item = await self.queue.get()
                self.queue.task_done()
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.closed.set()

    async def put_read(self, *items: object) -> None:
        """Puts ``items`` and returns once the reader has taken them all."""
        for item in items:
            self.queue.put_nowait(item)
        await self.queue.join()


async def reading(source: Source) -> AsyncGenerator[list[str], None]:
    """Batches of ``source`` whose first item, "a", has gone through on its own."""
    batches = read_ahead(source.items())
    first = asyncio.ensure_future(anext(batches))
    await source.put_read("a")
    assert await first == ["a"]
    return batches


async def test_the_first_item_goes_at_once_and_what_arrives_meanwhile_goes_as_one_batch() -> None:
    source = Source()
    batches = await reading(source)  # "a" came alone: not held back for a second item
    await source.put_read("b", "c", "d")  # the consumer is busy elsewhere meanwhile
    assert await anext(batches) == ["b", "c", "d"]
    await source.put_read(END)
    with pytest.raises(StopAsyncIteration):
        await anext(batches)


async def test_an_error_comes_after_the_items_read_before_it() -> None:
    source = Source()
    batches = await reading(source)
    await source.put_read("b", "c", ValueError("upstream failed"))
    assert await anext(batches) == ["b", "c"]
    with pytest.raises(ValueError, match="upstream failed"):
        await anext(batches)


async def test_silence_gives_an_empty_batch_and_the_waiting_read_goes_on() -> None:
    source = Source()
    batches = read_ahead(source.items(), idle_after=0.01)
    assert await anext(batches) == []  # nothing arrived: a keep-alive's cue
    assert not source.cancelled
    await source.put_read("late")
    batch = await anext(batches)
    while batch == []:  # more silences may pass before the consumer looks again
        batch = await anext(batches)
    assert batch == ["late"]


async def test_closing_the_batches_cancels_the_read_and_closes_the_source() -> None:
    source = Source()
    batches = await reading(source)
    await batches.aclose()
    assert source.cancelled
    assert source.closed.is_set()


async def test_a_source_cancelled_on_its_own_is_not_a_quiet_end() -> None:
    source = Source()
    batches = await reading(source)
    await source.put_read("b", asyncio.CancelledError())  # e.g. a gRPC call cancelled by someone else
    assert await anext(batches) == ["b"]
    with pytest.raises(asyncio.CancelledError):
        await anext(batches)
