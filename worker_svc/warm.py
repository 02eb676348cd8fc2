"""The call that writes a run's cached prefix: it says so as soon as the prefix is readable.

A prompt cache entry becomes readable once the response of the call writing it has begun, so that call is made
as a stream, and the caller is told at its first item; the answer is then collected as ``complete`` would return it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentmesh.llm.provider import Completion, InvalidResponse, LLMProvider, Prompt, StreamDone, aclose_stream


async def complete_announcing(
    provider: LLMProvider, prompt: Prompt, begun: Callable[[], Awaitable[None]]
) -> Completion:
    text: list[str] = []
    announced = False
    items = provider.stream(prompt)
    try:
        async for item in items:
            if not announced:
                announced = True
                await begun()
            if isinstance(item, StreamDone):
                return Completion(text="".join(text), usage=item.usage, stop_reason=item.stop_reason)
            text.append(item.text)
    finally:
        await aclose_stream(items)
    raise InvalidResponse(f"{prompt.model}: the stream ended without its usage")
