"""The base of every provider wrapper: it passes each call of ``LLMProvider`` through to the wrapped provider.

A wrapper (retries, the breaker, metering) overrides only what it changes. Every unary call (``complete``,
``call_tool``, ``turn``) goes through one hook, ``around``, so a wrapper that treats them alike overrides that hook
once; a new kind of unary call is a method in ``LLMProvider``, one here, and nothing in the wrappers unless
one of them must treat it differently. Streams have their own method, since a wrapper sees them item by item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from agentmesh.llm.provider import (
    Completion,
    LLMProvider,
    Prompt,
    Reply,
    Request,
    StreamItem,
    Tool,
    ToolCall,
    TurnRequest,
    TurnResult,
)

R = TypeVar("R", bound=Reply)


class WrapperProvider:
    """An ``LLMProvider`` that delegates to ``inner``; ``name`` is the wrapped provider's."""

    def __init__(self, inner: LLMProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def around(self, prompt: Request, operation: str, call: Callable[[], Awaitable[R]]) -> R:
        """Runs one unary call of ``inner`` (``operation`` names it: ``complete``, ``tool``, ``turn``); override to
        wrap all."""
        return await call()

    async def complete(self, prompt: Prompt) -> Completion:
        return await self.around(prompt, "complete", lambda: self.inner.complete(prompt))

    async def call_tool(self, prompt: Prompt, tool: Tool) -> ToolCall:
        return await self.around(prompt, "tool", lambda: self.inner.call_tool(prompt, tool))

    async def turn(self, request: TurnRequest) -> TurnResult:
        return await self.around(request, "turn", lambda: self.inner.turn(request))

    def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        return self.inner.stream(prompt)

    async def aclose(self) -> None:
        await self.inner.aclose()
