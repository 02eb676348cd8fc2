"""The one retry loop for model calls (the SDK's own retries are off): jittered backoff, retry-after, deadline,
and the wrapper every provider gets that runs its calls in it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from agentmesh.deadline import remaining_s
from agentmesh.llm.provider import LLMProvider, Prompt, ProviderError, Request, StreamItem, aclose_stream
from agentmesh.llm.wrapper import R, WrapperProvider

logger = logging.getLogger(__name__)

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a model call is retried.

    Field names follow the settings that feed them: ``RETRY_MAX_ATTEMPTS`` (total attempts, the first
    included), ``RETRY_EXPONENTIAL_MULTIPLIER`` and ``RETRY_EXPONENTIAL_MAX`` (seconds).
    """

    max_attempts: int = 3
    exponential_multiplier: float = 0.5
    exponential_max: float = 8.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def _wait(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, but never sooner than the server's ``retry-after``."""
        backoff = wait_random_exponential(multiplier=self.exponential_multiplier, max=self.exponential_max)(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, ProviderError) else None
        return max(backoff, retry_after or 0.0)

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_any(stop_after_attempt(self.max_attempts), StopAtDeadline()),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Awaits ``fn()`` until it succeeds, raises a non-retryable error, or the attempts run out."""

        # A coroutine function, so tenacity awaits each attempt (it would treat a lambda as synchronous).
        async def attempt() -> T:
            return await fn()

        return await self.retrying()(attempt)


class RetryingProvider(WrapperProvider):
    """Retries each call of ``inner`` under ``policy``; providers set their SDK's own retries to zero."""

    def __init__(self, inner: LLMProvider, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self._policy = policy

    async def around(self, prompt: Request, operation: str, call: Callable[[], Awaitable[R]]) -> R:
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


class StopAtDeadline(stop_base):
    """Stop now rather than sleep past the current deadline (``agentmesh.deadline``): nobody would read the answer."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        remaining = remaining_s()
        if remaining is None or retry_state.upcoming_sleep < remaining:
            return False
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "model call failed, not retrying: the next wait would pass the deadline",
            extra={
                "error": type(exc).__name__,
                "attempt": retry_state.attempt_number,
                "sleep_s": round(retry_state.upcoming_sleep, 3),
                "remaining_s": round(max(0.0, remaining), 3),
            },
        )
        return True


def _log_retry(state: RetryCallState) -> None:
    # Only the class and the status go to the log: messages may quote upstream text we do not control.
    exc = state.outcome.exception() if state.outcome else None
    details = exc.details if isinstance(exc, ProviderError) else {}
    logger.warning(
        "model call failed, retrying",
        extra={
            "error": type(exc).__name__,
            "status": details.get("status"),
            "attempt": state.attempt_number,
            "sleep_s": round(state.upcoming_sleep, 3),
        },
    )
