"""Retries as a wrapper every provider gets: one policy, one loop, whatever the backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agentmesh.llm.provider import Completion, LLMProvider, Prompt, StreamItem, Tool, ToolCall, aclose_stream
from agentmesh.llm.retry import RetryPolicy


class RetryingProvider:
    """Retries each call of ``inner`` under ``policy``; providers set their SDK's own retries to zero."""

    def __init__(self, inner: LLMProvider, policy: RetryPolicy) -> None:
        self._inner = inner
        self._policy = policy
        self.name = inner.name

    async def complete(self, prompt: Prompt) -> Completion:
        return await self._policy.call(lambda: self._inner.complete(prompt))

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        return await self._policy.call(lambda: self._inner.call_tool(prompt, tool))

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        """Retries only until the first item arrives: a partly streamed answer is never replayed."""

        async def first_item() -> tuple[AsyncIterator[StreamItem], StreamItem]:
            items = self._inner.stream(prompt)
            try:
                return items, await anext(items)
            except BaseException:
                await aclose_stream(items)
                raise

        items, first = await self._policy.call(first_item)
        try:
            yield first
            async for item in items:
                yield item
        finally:
            await aclose_stream(items)  # closes the upstream response when the consumer stops early

    async def aclose(self) -> None:
        await self._inner.aclose()
