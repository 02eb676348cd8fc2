"""GET /v1/runs and /v1/runs/{id}: the caller's own recent runs, as the inspector draws them."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.dependencies import Runs
from gateway.edge.auth import CurrentPrincipal
from gateway.openai.errors import ApiError
from gateway.openai.protocol import ErrorResponse
from gateway.runs.views import RunList, RunView

router = APIRouter(tags=["runs"])


@router.get("/v1/runs")
async def list_runs(principal: CurrentPrincipal, runs: Runs) -> RunList:
    """The caller's runs still in this gateway's history (RUN_HISTORY_SIZE per process), newest first."""
    return RunList(data=[record.summary_view() for record in runs.of(principal.subject)])


@router.get(
    "/v1/runs/{run_id}",
    responses={404: {"model": ErrorResponse, "description": "no run of the caller's with this id"}},
)
async def get_run(run_id: str, principal: CurrentPrincipal, runs: Runs) -> RunView:
    """One run: plan, subtask timeline (ms from the run's start), usage and cost per agent, how it ended."""
    record = runs.get(principal.subject, run_id)
    if record is None:
        # The same answer for another caller's run as for none at all: ids reveal nothing.
        raise ApiError(404, f"no run {run_id!r}", "invalid_request_error", param="run_id", code="run_not_found")
    return record.view()
