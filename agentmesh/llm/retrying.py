"""Retries as a wrapper every provider gets: one policy, one loop, whatever the backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from agentmesh.llm.provider import LLMProvider, Prompt, StreamItem, aclose_stream
from agentmesh.llm.retry import RetryPolicy
from agentmesh.llm.wrapper import R, WrapperProvider


class RetryingProvider(WrapperProvider):
    """Retries each call of ``inner`` under ``policy``; providers set their SDK's own retries to zero."""

    def __init__(self, inner: LLMProvider, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self._policy = policy

    async def around(self, prompt: Prompt, operation: str, call: Callable[[], Awaitable[R]]) -> R:
        return await self._policy.call(call)

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        """Retries only until the first item arrives: a partly streamed answer is never replayed."""

        async def first_item() -> tuple[AsyncIterator[StreamItem], StreamItem]:
            items = self.inner.stream(prompt)
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
