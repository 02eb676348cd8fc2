"""MAX_CONCURRENT_STREAMS_PER_USER: the runs one verified subject may have open in this process, however they run.

A chat completion holds its slot while its request is open; a response holds one for as long as its run goes on,
which for a background response outlives the request that started it.
"""

from __future__ import annotations

from collections import Counter

from agentmesh import metrics
from gateway.openai.errors import ApiError


class RunSlots:
    """``limit`` runs per subject (0: no cap), counted per process; ``what`` and ``code`` word the refusal."""

    def __init__(
        self,
        limit: int,
        what: str = "open runs (chat completions and responses, background ones included)",
        code: str = "too_many_concurrent_requests",
    ) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        self._what = what
        self._code = code

    def take(self, subject: str) -> None:
        """Takes one of ``subject``'s slots, or refuses with a 429."""
        if self.limit and self.open[subject] >= self.limit:
            metrics.rate_limit_rejections.labels("concurrency").inc()
            raise ApiError(
                429,
                f"too many {self._what} for this token subject (at most {self.limit} at once)",
                "rate_limit_error",
                code=self._code,
                headers={"Retry-After": "1"},
            )
        self.open[subject] += 1

    def give_back(self, subject: str) -> None:
        self.open[subject] -= 1
        if self.open[subject] <= 0:
            del self.open[subject]
