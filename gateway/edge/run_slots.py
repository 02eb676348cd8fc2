"""MAX_CONCURRENT_STREAMS_PER_USER: the runs one verified subject may have open in this process, however they run.

A chat completion holds its slot while its request is open; a response holds one for as long as its run goes on,
which for a background response outlives the request that started it.
"""

from __future__ import annotations

from collections import Counter

from agentmesh import metrics
from gateway.openai.errors import ApiError


class RunSlots:
    """``limit`` open runs per subject (0: no cap), counted per process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def take(self, subject: str) -> None:
        """Takes one of ``subject``'s slots, or refuses with the 429 every run path sends."""
        if self.limit and self.open[subject] >= self.limit:
            metrics.rate_limit_rejections.labels("concurrency").inc()
            raise ApiError(
                429,
                f"too many open runs for this token subject (at most {self.limit} at once, chat completions and "
                "responses, background ones included)",
                "rate_limit_error",
                code="too_many_concurrent_requests",
                headers={"Retry-After": "1"},
            )
        self.open[subject] += 1

    def give_back(self, subject: str) -> None:
        self.open[subject] -= 1
        if self.open[subject] <= 0:
            del self.open[subject]
