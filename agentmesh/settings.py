"""Settings every service shares, and the one way a service loads and validates its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentmesh.llm.pricing import PriceTable, load_prices
from agentmesh.rpc.options import DEFAULT_MAX_CONNECTION_AGE_S, server_options
from agentmesh.rpc.policy import ServerPolicy
from agentmesh.rpc.tls import TlsFiles

ProviderName = Literal["anthropic", "offline"]

# DESIGN.md named claude-sonnet-4-5-20250929, which the SDK's own table marks end-of-life on 2026-11-30.
DEFAULT_ORCHESTRATOR_MODEL = "claude-sonnet-4-6"
DEFAULT_WORKER_MODEL = "claude-haiku-4-5-20251001"


class GrpcTlsSettings(BaseSettings):
    """Read from the environment, then `.env`; a real environment variable wins over `.env`.

    The TLS files alone, so a health-check CLI can load them without a service's other settings.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    grpc_tls_cert_file: Path | None = Field(default=None, description="PEM certificate this process presents")
    grpc_tls_key_file: Path | None = Field(default=None, description="its PEM private key")
    grpc_tls_ca_file: Path | None = Field(
        default=None, description="PEM CA: peers must present a certificate it signed"
    )
    grpc_tls_server_name: str | None = Field(default=None, description="name expected in servers' certificates")

    @field_validator(
        "grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_ca_file", "grpc_tls_server_name", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_ca_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    @model_validator(mode="after")
    def _tls_complete(self) -> GrpcTlsSettings:
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both, or neither")
        if self.grpc_tls_ca_file is not None and self.grpc_tls_cert_file is None:
            raise ValueError("GRPC_TLS_CA_FILE needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE (mutual TLS)")
        return self

    @property
    def grpc_tls(self) -> TlsFiles:
        return TlsFiles(
            self.grpc_tls_cert_file, self.grpc_tls_key_file, self.grpc_tls_ca_file, self.grpc_tls_server_name
        )


class CommonSettings(GrpcTlsSettings):
    """What every process of the mesh reads."""

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
    """What a direct caller could otherwise get around: each service bounds its own work."""

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

    grpc_max_concurrent_rpcs: int = Field(
        default=1000, ge=0, description="calls at once, health watches included; more are refused; 0: no bound"
    )
    max_input_chars: int = Field(default=1_000_000, ge=1, description="characters of text in one request")
    grpc_default_deadline: float = Field(default=120.0, gt=0, description="seconds, for calls sent without one")
    grpc_reflection: bool = True

    @property
    def server_options(self) -> list[tuple[str, int]]:
        return server_options(self.grpc_max_connection_age, self.grpc_max_connection_age_grace)

    def server_policy(self) -> ServerPolicy:
        return ServerPolicy(
            tls=self.grpc_tls,
            max_concurrent_rpcs=self.grpc_max_concurrent_rpcs or None,
            max_input_chars=self.max_input_chars,
            default_deadline_s=self.grpc_default_deadline,
            reflection=self.grpc_reflection,
        )


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
