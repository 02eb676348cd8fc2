"""Reading a stream ahead of its consumer, so that what arrives while the consumer is busy goes on in one piece.

Every hop of a run relays text deltas, and every relayed message costs a gRPC write and read, or an SSE event,
on each side. A model that streams faster than a busy hop forwards (under load, or a fast local model) would
queue its deltas one message each; read ahead, they leave as one. Nothing is held back: a batch goes as soon
as the consumer asks for the next, whatever has arrived by then, and the first item never waits for a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Buffer(Generic[T]):
    def __init__(self) -> None:
        self.items: list[T] = []
        self.ended = False
        self.error: BaseException | None = None
        self.arrived = asyncio.Event()

    async def fill(self, source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                self.items.append(item)
                self.arrived.set()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the consumer closed the batches
            self.error = exc  # the source itself was cancelled (a cancelled gRPC call): the consumer must know
        except Exception as exc:
            self.error = exc
        finally:
            self.ended = True
            self.arrived.set()


async def read_ahead(source: AsyncIterator[T], *, idle_after: float | None = None) -> AsyncGenerator[list[T], None]:
    """Every item of ``source``, in order, in lists of all that arrived since the consumer last asked.

    ``source`` is read in a task of its own (with a copy of the caller's context); an error it raises comes
    after the items read before it. With ``idle_after``, an empty list comes after that many seconds without an
    item (a keep-alive's cue); the read that is waiting goes on. Closing this generator cancels the read and
    closes ``source``.
    """
    buffer: _Buffer[T] = _Buffer()
    reader = asyncio.create_task(buffer.fill(source))
    try:
        while True:
            if not buffer.items and not buffer.ended:
                try:
                    async with asyncio.timeout(idle_after):
                        await buffer.arrived.wait()
                except TimeoutError:
                    yield []
                    continue
            buffer.arrived.clear()
            if buffer.items:
                items, buffer.items = buffer.items, []
                yield items
            elif buffer.error is not None:
                raise buffer.error
            else:
                return
    finally:
        reader.cancel()
        await asyncio.wait({reader})
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
