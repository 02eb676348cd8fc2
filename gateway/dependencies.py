"""Per-request access to what the app holds: its settings, the orchestrator client, chat and responses serving and
the recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.openai.chat.serving import ChatServing
from gateway.openai.responses.serving import ResponsesServing
from gateway.openai.teams import TeamModels
from gateway.orchestrator_client import OrchestratorClient
from gateway.runs.history import RunHistory
from gateway.settings import GatewaySettings


@dataclass
class GatewayState:
    settings: GatewaySettings
    started_at: int
    runs: RunHistory
    models: TeamModels
    # Set by the app's lifespan for as long as the app runs.
    orchestrator: OrchestratorClient | None = None
    chat: ChatServing | None = None
    responses: ResponsesServing | None = None


async def _state(request: Request) -> GatewayState:
    state = request.app.state.gateway
    assert isinstance(state, GatewayState)
    return state


async def _orchestrator(state: Annotated[GatewayState, Depends(_state)]) -> OrchestratorClient:
    if state.orchestrator is None:
        raise RuntimeError("the orchestrator client exists only while the app's lifespan runs")
    return state.orchestrator


async def _chat(state: Annotated[GatewayState, Depends(_state)]) -> ChatServing:
    if state.chat is None:
        raise RuntimeError("chat serving exists only while the app's lifespan runs")
    return state.chat


async def _responses(state: Annotated[GatewayState, Depends(_state)]) -> ResponsesServing:
    if state.responses is None:
        raise RuntimeError("responses serving exists only while the app's lifespan runs")
    return state.responses


async def _runs(state: Annotated[GatewayState, Depends(_state)]) -> RunHistory:
    return state.runs


State = Annotated[GatewayState, Depends(_state)]
Orchestrator = Annotated[OrchestratorClient, Depends(_orchestrator)]
Chat = Annotated[ChatServing, Depends(_chat)]
Responses = Annotated[ResponsesServing, Depends(_responses)]
Runs = Annotated[RunHistory, Depends(_runs)]
