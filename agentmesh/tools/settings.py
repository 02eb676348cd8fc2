"""The Toolbox's settings: a piece the worker's settings embed (docs/configuration.md)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from agentmesh.settings import SETTINGS_CONFIG


class ToolSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    max_tool_result_chars: int = Field(
        default=20_000, ge=200, le=10_000_000, description="characters of one tool result the model gets"
    )
    mcp_connect_timeout: float = Field(
        default=20.0, gt=0, description="seconds to start a server, initialize its session and list its tools"
    )
    mcp_reconnect_backoff_initial: float = Field(default=0.5, gt=0, description="seconds before the first retry")
    mcp_reconnect_backoff_max: float = Field(default=30.0, gt=0, description="seconds between retries, at most")
    mcp_check_interval: float = Field(
        default=10.0, ge=0, description="seconds of idleness after which a session lists the tools again; 0: never"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> ToolSettings:
        if self.mcp_reconnect_backoff_max < self.mcp_reconnect_backoff_initial:
            raise ValueError("MCP_RECONNECT_BACKOFF_MAX must be at least MCP_RECONNECT_BACKOFF_INITIAL")
        return self
