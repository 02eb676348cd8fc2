"""Settings every service shares, and the one way a service loads and validates its own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentmesh.llm import registry
from agentmesh.llm.pricing import OFFLINE_MODEL, PriceTable, load_prices
from agentmesh.rpc.options import DEFAULT_MAX_CONNECTION_AGE_S
from agentmesh.rpc.policy import ServerPolicy
from agentmesh.rpc.tls import TlsFiles
from agentmesh.runtime import EventLoopName

ProviderName = registry.ProviderName

# Not claude-sonnet-4-5-20250929: the SDK's own table marks it end-of-life on 2026-11-30.
DEFAULT_ORCHESTRATOR_MODEL = "claude-sonnet-4-6"
DEFAULT_WORKER_MODEL = "claude-haiku-4-5-20251001"
SETTINGS_CONFIG = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)
# The repository's teams/ (a checkout or an editable install); images set TEAMS_DIR.
DEFAULT_TEAMS_DIR = Path(__file__).resolve().parent.parent / "teams"


class GrpcTlsSettings(BaseSettings):
    """Read from the environment, then `.env`; a real environment variable wins over `.env`.

    The TLS files alone, so a health-check CLI can load them without a service's other settings.
    """

    model_config = SETTINGS_CONFIG

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
    """What every process of the mesh reads, the gateway included: TLS, logging, tracing, shutdown."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "standard"] = "json"
    otel_service_name: str | None = None
    otel_exporter_otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP base URL; unset: no tracing")
    otel_sdk_disabled: bool = False
    event_loop: EventLoopName = Field(
        default="uvloop", description="uvloop (less CPU on every hop) or asyncio (the standard library's loop)"
    )
    shutdown_grace_period: float = Field(
        default=125.0, ge=0, description="seconds open calls may take to finish after SIGTERM (fits a whole run)"
    )


class ModelSettings(CommonSettings):
    """What a process calling a model reads: which backend, its prices, and the retry and breaker policy."""

    llm_provider: ProviderName | None = Field(
        default=None,
        description="default: the first registry provider whose credentials are set (docs/configuration.md)",
    )
    model_pricing_file: Path | None = Field(default=None, description="JSON or TOML prices overriding the defaults")
    retry_max_attempts: int = Field(default=3, ge=1, le=10)
    retry_exponential_multiplier: float = Field(default=0.5, gt=0, description="seconds")
    retry_exponential_max: float = Field(default=8.0, gt=0, description="seconds")
    upstream_pacing: bool = Field(
        default=True, description="pace model calls from the API's rate-limit headers (docs/fan-outs.md)"
    )
    rate_limit_storage_uri: str = Field(
        default="memory://", description="redis://... shares what the pacing learns among processes"
    )
    circuit_breaker_failure_threshold: int = Field(default=5, ge=1, description="consecutive failed calls")
    circuit_breaker_timeout: float = Field(default=30.0, gt=0, description="seconds a breaker stays open")

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if value.partition("://")[0] not in ("memory", "redis", "rediss", "redis+unix"):
            raise ValueError(f"{value!r}: expected memory:// or redis://host:port (also rediss://, redis+unix://)")
        return value

    @field_validator("model_pricing_file")
    @classmethod
    def _prices_load(cls, path: Path | None) -> Path | None:
        load_prices(path)  # a bad file stops start-up here, naming MODEL_PRICING_FILE
        return path

    @property
    def prices(self) -> PriceTable:
        return load_prices(self.model_pricing_file)


class OrchestratorRole(BaseSettings):
    """The orchestrator's backend, model and output cap: the defaults a team's orchestrator.md may override."""

    model_config = SETTINGS_CONFIG

    orchestrator_provider: ProviderName | None = Field(default=None, description="overrides LLM_PROVIDER")
    orchestrator_model: str = DEFAULT_ORCHESTRATOR_MODEL
    orchestrator_max_tokens: int = Field(default=2048, ge=1, le=64_000)


class WorkerRole(BaseSettings):
    """Every worker specialist's defaults, which its workers/<name>.md may override."""

    model_config = SETTINGS_CONFIG

    worker_provider: ProviderName | None = Field(default=None, description="overrides LLM_PROVIDER")
    worker_model: str = DEFAULT_WORKER_MODEL
    worker_max_tokens: int = Field(default=2048, ge=1, le=64_000)


class SynthesizerRole(BaseSettings):
    """The synthesizer's defaults, which a team's synthesizer.md may override."""

    model_config = SETTINGS_CONFIG

    synthesizer_provider: ProviderName | None = Field(default=None, description="overrides LLM_PROVIDER")
    synthesizer_model: str = DEFAULT_WORKER_MODEL
    synthesizer_max_tokens: int = Field(default=4096, ge=1, le=64_000)


class TeamsSettings(BaseSettings):
    """Where the teams are: every process of the mesh reads the same folder."""

    model_config = SETTINGS_CONFIG

    teams_dir: Path = Field(default=DEFAULT_TEAMS_DIR, description="a folder per team: teams/<team>/*.md")


class GrpcServiceSettings(ModelSettings, TeamsSettings):
    """One agent's service; it bounds its own work (what a direct caller could otherwise get around).

    Subclasses set ``agent`` and declare ``<agent>_provider`` and ``<agent>_model``.
    """

    agent: ClassVar[str]
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

    def server_policy(self) -> ServerPolicy:
        return ServerPolicy(
            tls=self.grpc_tls,
            max_concurrent_rpcs=self.grpc_max_concurrent_rpcs or None,
            max_input_chars=self.max_input_chars,
            default_deadline_s=self.grpc_default_deadline,
            reflection=self.grpc_reflection,
            max_connection_age_s=self.grpc_max_connection_age,
            max_connection_age_grace_s=self.grpc_max_connection_age_grace,
        )

    @model_validator(mode="after")
    def _provider_has_credentials(self) -> GrpcServiceSettings:
        variable, name = self.provider_choice()
        if missing := registry.missing_credentials(name, registry.environment()):
            raise ValueError(f"{variable}={name} needs {missing} (in the environment or .env)")
        return self

    def provider_choice(self) -> tuple[str, str]:
        """The agent's provider and the variable that chose it (``<AGENT>_PROVIDER``, ``LLM_PROVIDER``, or none)."""
        own: str | None = getattr(self, f"{self.agent}_provider")
        if own:
            return f"{self.agent.upper()}_PROVIDER", own
        if self.llm_provider:
            return "LLM_PROVIDER", self.llm_provider
        return "the default provider", registry.default_provider(registry.environment())

    @property
    def provider(self) -> str:
        return self.provider_choice()[1]

    @property
    def model(self) -> str:
        return str(getattr(self, f"{self.agent}_model"))

    def describe(self) -> str:
        """Which provider and model answer for this agent, and which variable chose the provider."""
        variable, name = self.provider_choice()
        model = OFFLINE_MODEL if name == "offline" else self.model  # the demo model ignores the model setting
        return f"{self.agent}: provider {name} (chosen by {variable}), model {model}"


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
