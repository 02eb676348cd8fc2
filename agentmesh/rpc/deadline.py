"""Deadline propagation: grpc Python does not pass a caller's deadline downstream by itself."""

from __future__ import annotations

from typing import Any

import grpc

# Left for our own reply after a downstream call returns, so we answer before the caller gives up.
MARGIN_S = 0.25


def phase_budget(phase_s: float, context: grpc.aio.ServicerContext[Any, Any]) -> float:
    """The phase's own budget, cut to what remains of the caller's deadline less a margin."""
    remaining = context.time_remaining()
    if remaining is None:
        return phase_s
    return max(0.0, min(phase_s, remaining - MARGIN_S))
