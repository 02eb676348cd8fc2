"""Settings every service shares, and the one way a service loads and validates its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentmesh.llm.pricing import PriceTable, load_prices
from agentmesh.rpc.options import DEFAULT_MAX_CONNECTION_AGE_S, server_options

ProviderName = Literal["anthropic", "offline"]

# DESIGN.md named claude-sonnet-4-5-20250929, which the SDK's own table marks end-of-life on 2026-11-30.
DEFAULT_ORCHESTRATOR_MODEL = "claude-sonnet-4-6"
DEFAULT_WORKER_MODEL = "claude-haiku-4-5-20251001"


class CommonSettings(BaseSettings):
    """Read from the environment, then `.env`; a real environment variable wins over `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    llm_provider: ProviderName | None = Field(
        default=None, description="anthropic if ANTHROPIC_API_KEY is set, else offline"
    )
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    offline_latency_ms: int = Field(default=0, ge=0, le=600_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "standard"] = "json"
    model_pricing_file: Path | None = Field(default=None, description="JSON or TOML prices overriding the defaults")
    otel_service_name: str | None = None
    otel_exporter_otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP base URL; unset: no export")
    otel_sdk_disabled: bool = False
    shutdown_grace_period: float = Field(
        default=125.0, ge=0, description="seconds open calls may take to finish after SIGTERM (fits a whole run)"
    )
    retry_max_attempts: int = Field(default=3, ge=1, le=10)
    retry_exponential_multiplier: float = Field(default=0.5, gt=0, description="seconds")
    retry_exponential_max: float = Field(default=8.0, gt=0, description="seconds")
    circuit_breaker_failure_threshold: int = Field(default=5, ge=1, description="consecutive failed calls")
    circuit_breaker_timeout: float = Field(default=30.0, gt=0, description="seconds a breaker stays open")

    @field_validator("model_pricing_file")
    @classmethod
    def _prices_load(cls, path: Path | None) -> Path | None:
        load_prices(path)  # a bad file stops start-up here, naming MODEL_PRICING_FILE
        return path

    @property
    def prices(self) -> PriceTable:
        return load_prices(self.model_pricing_file)

    @model_validator(mode="after")
    def _pick_provider(self) -> CommonSettings:
        if self.llm_provider is None:
            self.llm_provider = "anthropic" if self.anthropic_api_key else "offline"
        if self.llm_provider == "anthropic" and not self.anthropic_api_key:
            raise ValueError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        return self

    @property
    def provider(self) -> ProviderName:
        assert self.llm_provider is not None  # set by the validator
        return self.llm_provider


class GrpcServiceSettings(CommonSettings):
    grpc_listen: str
    metrics_port: int = Field(ge=0, le=65535, description="Prometheus endpoint; 0 turns it off")
    grpc_max_connection_age: float = Field(
        default=DEFAULT_MAX_CONNECTION_AGE_S,
        ge=0,
        description="seconds before a client is asked to reconnect (new replicas then get traffic); 0: never",
    )
    grpc_max_connection_age_grace: float = Field(
        default=0.0,
        ge=0,
        description="seconds calls in flight on an aged connection may still take; 0: no limit (deadlines bound them)",
    )

    @property
    def server_options(self) -> list[tuple[str, int]]:
        return server_options(self.grpc_max_connection_age, self.grpc_max_connection_age_grace)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Builds the settings or stops the process with one line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"{cls.__name__}: invalid configuration:"]
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "(settings)"
            lines.append(f"  {name}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
