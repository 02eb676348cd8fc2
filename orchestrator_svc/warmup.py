"""Warming a run's cached prompt prefix before the fan-out: per model, one worker call writes it, the rest wait.

Launched all at once, every worker call misses the cache and writes the prefix (at 1.25x the input price, more
than no caching at all). So the first call for a model writes it, and the others start once it is readable:
when that call's response has begun (the worker sends its initial metadata then). A writer that fails before
that lets the others go on as they are.
"""

from __future__ import annotations

import asyncio


class Warmup:
    """One run's warm-up state: which models have a writer, and whether its prefix is readable yet."""

    def __init__(self) -> None:
        self._readable: dict[str, asyncio.Event] = {}

    def claim(self, model_key: str) -> asyncio.Event | None:
        """The event the caller must set once the prefix is readable, when it is the first for ``model_key`` (it
        writes); None when another call writes, and ``readable`` is to be awaited."""
        if model_key in self._readable:
            return None
        self._readable[model_key] = asyncio.Event()
        return self._readable[model_key]

    async def readable(self, model_key: str) -> None:
        await self._readable[model_key].wait()
