"""A circuit breaker per model: after repeated upstream faults, calls fail fast instead of queueing on a sick API.

A small module rather than a library: pybreaker's async support is Tornado-only, aiobreaker has had no
release since 2021, and purgatory keeps its state behind an async unit of work (no synchronous ``state``
for health and metrics, no injectable clock). What we need fits here: our own error classes decide what
counts, streams count once they end, and half-open lets exactly one probe through.

Closed: calls pass; ``failure_threshold`` consecutive faults open it. Open: calls fail at once with
``CircuitOpen`` (an ``Unavailable``: gRPC UNAVAILABLE) for ``reset_timeout_s``. Half-open: one probe call
passes (the others still fail fast); its success closes the breaker, its failure opens it again.
Faults are ``RateLimited`` and ``Unavailable`` (429, 529, 5xx, connection errors, upstream timeouts) and a
call cancelled by its deadline; a rejected request (4xx) or a caller that went away is not the model's fault.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from agentmesh import deadline
from agentmesh.llm.provider import (
    LLMProvider,
    Prompt,
    ProviderError,
    RateLimited,
    Request,
    StreamItem,
    Unavailable,
    aclose_stream,
)
from agentmesh.llm.wrapper import R, WrapperProvider

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Unavailable):
    """The model's breaker is open: the call was not sent upstream."""


Listener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


def is_upstream_fault(exc: BaseException) -> bool:
    # A call the pacing held back (agentmesh.llm.pacer) never reached the API: no news about its health.
    return isinstance(exc, RateLimited | Unavailable) and not getattr(exc, "held_back", False)


@dataclass
class CircuitBreaker:
    """The breaker of one model in one process; ``state`` is safe to read at any time (health, metrics)."""

    name: str
    failure_threshold: int = 5
    reset_timeout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    listeners: list[Listener] = field(default_factory=list)
    consecutive_failures: int = 0
    _state: BreakerState = BreakerState.CLOSED
    _opened_at: float = 0.0
    _probing: bool = False

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.reset_timeout_s:
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 unless open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout_s - self.clock())

    def acquire(self) -> None:
        """Call before each upstream call; raises ``CircuitOpen`` when the call must not be sent."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        if state is BreakerState.HALF_OPEN:
            why = "a probe call is testing it"
        else:
            why = f"failing fast for another {self.retry_in_s():.1f} s"
        raise CircuitOpen(
            f"circuit breaker for {self.name} is {state.value} after {self.consecutive_failures} consecutive "
            f"upstream failures; {why}",
            details={"model": self.name, "breaker": state.value},
        )

    def record_success(self) -> None:
        self._probing = False
        self.consecutive_failures = 0
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._probing = False
        self.consecutive_failures += 1
        if self._state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self.clock()
            if self._state is not BreakerState.OPEN:
                self._move(BreakerState.OPEN)

    def record_abandoned(self) -> None:
        """The caller went away before an outcome: neither a success nor a fault, but the probe slot is free again."""
        self._probing = False

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        log = logger.warning if new is BreakerState.OPEN else logger.info
        log(
            "circuit breaker %s",
            new.value,
            extra={
                "model": self.name,
                "from": old.value,
                "to": new.value,
                "consecutive_failures": self.consecutive_failures,
                "reset_timeout_s": self.reset_timeout_s,
            },
        )
        for listener in self.listeners:
            listener(self, old, new)


@dataclass
class BreakerRegistry:
    """Every breaker of a process, one per model, created on first use; listeners hear every transition."""

    failure_threshold: int = 5
    reset_timeout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    on_create: list[Callable[[CircuitBreaker], None]] = field(default_factory=list)

    def get(self, model: str) -> CircuitBreaker:
        breaker = self.breakers.get(model)
        if breaker is None:
            breaker = CircuitBreaker(
                model, self.failure_threshold, self.reset_timeout_s, self.clock, listeners=self.listeners
            )
            self.breakers[model] = breaker
            for hook in self.on_create:
                hook(breaker)
        return breaker

    def states(self) -> dict[str, BreakerState]:
        return {model: breaker.state for model, breaker in self.breakers.items()}


class BreakerProvider(WrapperProvider):
    """Wraps a provider (retries included: one call is one outcome) with the breaker of each prompt's model."""

    def __init__(self, inner: LLMProvider, registry: BreakerRegistry) -> None:
        super().__init__(inner)
        self.registry = registry

    async def around(self, prompt: Request, operation: str, call: Callable[[], Awaitable[R]]) -> R:
        breaker = self.registry.get(prompt.model)
        breaker.acquire()
        try:
            result = await call()
        except BaseException as exc:
            _record(breaker, exc)
            raise
        breaker.record_success()
        return result

    async def stream(self, prompt: Prompt) -> AsyncIterator[StreamItem]:
        """A stream counts when it ends: a success once fully read, a fault if it breaks on the way."""
        breaker = self.registry.get(prompt.model)
        breaker.acquire()
        items = self.inner.stream(prompt)
        try:
            async for item in items:
                yield item
        except BaseException as exc:
            _record(breaker, exc)
            raise
        finally:
            await aclose_stream(items)
        breaker.record_success()


def _record(breaker: CircuitBreaker, exc: BaseException) -> None:
    if is_upstream_fault(exc):
        breaker.record_failure()
    elif isinstance(exc, ProviderError):
        breaker.record_success()  # the API answered, even if it refused this request
    elif isinstance(exc, asyncio.CancelledError | GeneratorExit) and deadline.expired():
        breaker.record_failure()  # cancelled by the deadline: the model was too slow
    else:
        breaker.record_abandoned()  # the caller went away, or a bug of ours: not the model's fault
