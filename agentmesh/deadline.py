"""The current call's deadline in a ContextVar, so the layers below a handler (retries, breaker) can respect it.

The gRPC server interceptor sets it from ``context.time_remaining()``; the orchestrator narrows it to a
phase's timeout. Instants are ``time.monotonic()`` values; ``None`` means no deadline. grpc Python does not pass a
caller's deadline downstream by itself: ``phase_timeout_s`` cuts a phase's own timeout to it. No grpc import here,
so the layers below a handler stay free of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

deadline_var: ContextVar[float | None] = ContextVar("agentmesh_deadline", default=None)

# A cancellation this close to the deadline is the deadline's doing (gRPC's timer and ours differ by microseconds).
EXPIRY_TOLERANCE_S = 0.05

# Left for our own reply after a downstream call returns, so we answer before the caller gives up.
MARGIN_S = 0.25


class CallerDeadline(Protocol):
    """What ``phase_timeout_s`` reads of a ``grpc.aio.ServicerContext``."""

    def time_remaining(self) -> float | None: ...


def remaining_s() -> float | None:
    """Seconds left before the current deadline (negative once passed), or None without one."""
    deadline = deadline_var.get()
    return None if deadline is None else deadline - time.monotonic()


def expired() -> bool:
    remaining = remaining_s()
    return remaining is not None and remaining <= EXPIRY_TOLERANCE_S


def set_deadline_in(seconds: float | None) -> None:
    """Sets the deadline for the rest of the current task (a gRPC handler runs in a task of its own)."""
    deadline_var.set(None if seconds is None else time.monotonic() + seconds)


@contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    """Narrows the deadline to ``seconds`` from now for the block; an earlier deadline already set still wins."""
    current = deadline_var.get()
    candidate = time.monotonic() + seconds
    token = deadline_var.set(candidate if current is None else min(current, candidate))
    try:
        yield
    finally:
        deadline_var.reset(token)


def phase_timeout_s(phase_s: float, context: CallerDeadline) -> float:
    """The phase's own timeout, cut to what remains of the caller's deadline less a margin."""
    remaining = context.time_remaining()
    if remaining is None:
        return phase_s
    return max(0.0, min(phase_s, remaining - MARGIN_S))
