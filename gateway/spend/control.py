"""Spend control at the edge: each request's cost cap, and each subject's rolling daily budget.

A request reserves what it may cost (its cap) from its subject's day before the run starts and settles to what
the run really cost when it ends, so concurrent requests, on one replica or many, never spend past the limit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from agentmesh import metrics
from agentmesh.cost_cap import SPENT_TRAILER
from agentmesh.v1 import orchestrator_pb2
from gateway.edge.identity import subject_key
from gateway.openai.errors import ApiError, rpc_error, service_unavailable
from gateway.openai.protocol import CompletionUsage
from gateway.orchestrator_client import OrchestratorCall
from gateway.spend.store import Hold, SpendStore, SpendStoreUnavailable

logger = logging.getLogger(__name__)

REMAINING_USD_HEADER = "X-Budget-Remaining-USD"
LOWERED_HEADER = "X-Max-Tokens-Lowered"


@dataclass
class Grant:
    """What one request may spend: ``cost_cap_usd`` (0: no cap), and its hold on the subject's day, if any."""

    cost_cap_usd: float
    hold: Hold | None = None
    # The day's remainder, not the request's own cap, is what limits the run.
    daily_bound: bool = False

    def headers(self, cost: float | None = None) -> dict[str, str]:
        """What is left of the day: after this request's reservation, or after its ``cost`` once known."""
        if self.hold is None:
            return {}
        left = self.hold.left_usd + (self.hold.reserved_usd - cost if cost is not None else 0.0)
        return {REMAINING_USD_HEADER: f"{max(0.0, left):.6f}"}


def lowered_headers(usage: CompletionUsage) -> dict[str, str]:
    """Which agents' max_tokens the cost cap lowered, e.g. ``orchestrator 2048->91, worker/generalist 2048->600``
    (configured -> given); no header when none was."""
    lowered = [
        f"{agent.agent}{'/' + agent.specialist if agent.specialist else ''} "
        f"{agent.max_tokens_lowered_from}->{agent.max_tokens}"
        for agent in usage.agents
        if agent.max_tokens_lowered_from
    ]
    return {LOWERED_HEADER: ", ".join(lowered)} if lowered else {}


class SpendControl:
    """MAX_COST_PER_REQUEST_USD and SPEND_LIMIT_USD_PER_DAY (0: none) over a spend store."""

    def __init__(self, store: SpendStore, max_cost_per_request: float, limit_per_day: float) -> None:
        self._store = store
        self._max_cost_usd = max_cost_per_request
        self._limit_usd_per_day = limit_per_day
        self._settling: set[asyncio.Task[None]] = set()

    async def open(self, subject: str, requested: float | None) -> Grant:
        """The request's cap: the server's default, lowered by the request, lowered by what is left of the day."""
        caps = [cap for cap in (requested, self._max_cost_usd) if cap]
        cap = min(caps) if caps else 0.0
        if not self._limit_usd_per_day:
            return Grant(cap)
        wanted = min(cap, self._limit_usd_per_day) if cap else self._limit_usd_per_day
        try:
            hold = await self._store.reserve(subject_key(subject), wanted, self._limit_usd_per_day)
        except SpendStoreUnavailable as exc:
            logger.error("spend store failed: %s", exc)
            raise service_unavailable("the spend budget's storage is unavailable", "spend_store_unavailable") from None
        grant = Grant(hold.reserved_usd, hold, daily_bound=hold.reserved_usd < wanted or not cap)
        if hold.reserved_usd <= 0:
            raise self._insufficient_quota(grant)
        return grant

    def watch(self, run: OrchestratorCall, grant: Grant) -> SettlingCall:
        return SettlingCall(run, grant, self)

    def rpc_error(self, exc: grpc.aio.AioRpcError, grant: Grant) -> ApiError:
        """A cap too small for the run is the client's 400, or a 429 when what is left of the day made it so."""
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
            return rpc_error(exc)
        if grant.daily_bound:
            return self._insufficient_quota(grant, f": {exc.details()}")
        metrics.spend_refusals.labels("cost_cap").inc()
        return rpc_error(exc)

    def settle_later(self, grant: Grant, cost: float | None) -> None:
        """Settles in the background: a run's end (a cancelled stream's too) must not wait for the store."""
        if grant.hold is None:
            return
        task = asyncio.create_task(self.settle(grant, cost))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def settle(self, grant: Grant, cost: float | None) -> None:
        """An unknown cost keeps the whole reservation: the day is never charged less than was spent."""
        if grant.hold is None:
            return
        try:
            await self._store.settle(
                grant.hold, grant.hold.reserved_usd if cost is None else min(cost, grant.hold.reserved_usd)
            )
        except SpendStoreUnavailable as exc:
            logger.error("spend store failed to settle a run; its whole reservation stays spent: %s", exc)

    def _insufficient_quota(self, grant: Grant, detail: str = "") -> ApiError:
        metrics.spend_refusals.labels("daily_budget").inc()
        assert grant.hold is not None
        retry_after = grant.hold.retry_after_s
        left_usd = max(0.0, grant.hold.left_usd + grant.hold.reserved_usd)
        return ApiError(
            429,
            f"daily spend limit reached for this token subject: SPEND_LIMIT_USD_PER_DAY is "
            f"${self._limit_usd_per_day:g} per rolling 24 h and ${left_usd:.6f} of it is left (runs in flight count "
            f"at what they may cost){detail}; retry after {retry_after} s",
            "insufficient_quota",
            code="insufficient_quota",
            headers={"Retry-After": str(retry_after), **grant.headers()},
        )


class SettlingCall:
    """An OrchestratorCall that settles its grant once the run ends, however it ends."""

    def __init__(self, run: OrchestratorCall, grant: Grant, control: SpendControl) -> None:
        self._run = run
        self._grant = grant
        self._control = control
        self._ended = False
        self.cost: float | None = None

    async def next_event(self) -> orchestrator_pb2.RunEvent | None:
        try:
            event = await self._run.next_event()
        except grpc.aio.AioRpcError as exc:
            self._end(_spent_before_failing(exc))
            raise
        except BaseException:
            self._end(None)
            raise
        if event is None:
            self._end(self.cost)
        elif event.HasField("usage") and event.usage.fully_priced:
            self.cost = event.usage.cost_usd
        return event

    def cancel(self) -> None:
        self._run.cancel()
        self._end(None)

    def _end(self, cost: float | None) -> None:
        if not self._ended:
            self._ended = True
            self._control.settle_later(self._grant, cost)


def _spent_before_failing(exc: grpc.aio.AioRpcError) -> float | None:
    """What the orchestrator says a failed run spent (its reservations counted whole); None when it did not say."""
    for key, value in exc.trailing_metadata() or ():
        if key == SPENT_TRAILER and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
    return None
