"""Per-request access to what the app holds: its settings, the orchestrator client and the recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.orchestrator_client import OrchestratorClient
from gateway.runs.history import RunHistory
from gateway.settings import GatewaySettings
from gateway.spend.control import SpendControl


@dataclass
class GatewayState:
    settings: GatewaySettings
    started_at: int
    runs: RunHistory
    # Set by the app's lifespan for as long as the app runs.
    orchestrator: OrchestratorClient | None = None
    spend: SpendControl | None = None


async def _state(request: Request) -> GatewayState:
    state = request.app.state.gateway
    assert isinstance(state, GatewayState)
    return state


async def _settings(state: Annotated[GatewayState, Depends(_state)]) -> GatewaySettings:
    return state.settings


async def _orchestrator(state: Annotated[GatewayState, Depends(_state)]) -> OrchestratorClient:
    if state.orchestrator is None:
        raise RuntimeError("the orchestrator client exists only while the app's lifespan runs")
    return state.orchestrator


async def _spend(state: Annotated[GatewayState, Depends(_state)]) -> SpendControl:
    if state.spend is None:
        raise RuntimeError("spend control exists only while the app's lifespan runs")
    return state.spend


async def _runs(state: Annotated[GatewayState, Depends(_state)]) -> RunHistory:
    return state.runs


State = Annotated[GatewayState, Depends(_state)]
Settings = Annotated[GatewaySettings, Depends(_settings)]
Orchestrator = Annotated[OrchestratorClient, Depends(_orchestrator)]
Spend = Annotated[SpendControl, Depends(_spend)]
Runs = Annotated[RunHistory, Depends(_runs)]
