"""The gateway's configuration, read from the environment (and `.env`) and validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
import limits
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from agentmesh.settings import CommonSettings, TeamsSettings

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
MIN_JWT_SECRET_LENGTH = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS = tuple(MIN_JWT_SECRET_LENGTH)
JwtAlgorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"
]
PublicKey = RSAPublicKey | EllipticCurvePublicKey
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class GatewaySettings(CommonSettings, TeamsSettings):
    """The HTTP edge: no model settings, the agents behind the orchestrator own those."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    orchestrator_target: str = "localhost:50051"
    # Declared before the keys: their validators read it.
    jwt_algorithm: JwtAlgorithm = Field(
        default="HS256", description="HS*: verified with JWT_SECRET_KEY; RS*/PS*/ES*: with JWT_PUBLIC_KEY(_FILE)"
    )
    # Required for HS*: the empty default exists so that a missing value gets the same clear message as a short one.
    jwt_secret_key: SecretStr = Field(default=SecretStr(""), validate_default=True)
    jwt_public_key: str | None = Field(default=None, description="PEM public key of the token issuer (RS/PS/ES)")
    jwt_public_key_file: Path | None = Field(default=None, description="file holding JWT_PUBLIC_KEY")
    jwt_audience: str | None = Field(default=None, description="required `aud`; unset: tokens with an `aud` fail")
    jwt_issuer: str | None = Field(default=None, description="required `iss`")
    service_model_name: str = Field(default="agentmesh", min_length=1)
    stream_progress: Literal["reasoning", "none"] = "reasoning"
    run_history_size: int = Field(default=200, ge=0, description="recent runs kept for /v1/runs and /inspect")
    request_timeout: float = Field(default=120.0, gt=0, description="seconds; the deadline of Orchestrator.Run")
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    stream_start_wait: float = Field(
        default=1.0,
        ge=0,
        description="seconds a streamed request waits for the run's first event before its status line is sent",
    )
    shutdown_drain_delay: float = Field(
        default=3.0,
        ge=0,
        description="seconds the gateway keeps accepting after SIGTERM while readiness says 503",
    )
    max_request_body_size: int = Field(default=1_048_576, gt=0, description="bytes")
    max_messages: int = Field(default=256, gt=0, description="messages per chat request")
    max_total_chars: int = Field(default=400_000, gt=0, description="characters of all messages of a chat request")
    rate_limit_enabled: bool = True
    rate_limit_chat_completions: str = Field(default="60/minute", description="per subject and per client IP")
    rate_limit_default: str = Field(default="300/minute", description="every other /v1 route")
    rate_limit_per_ip: str = Field(
        default="600/minute", description="per client IP, its own budget (unauthenticated requests have another)"
    )
    rate_limit_storage_uri: str = Field(default="memory://", description="memory:// (per process) or redis://...")
    # 8: a client runs a few requests at once (a chat UI's title and answer, a script's small fan-out), while one
    # token cannot hold dozens of runs, each a plan, several workers and a synthesis.
    max_concurrent_streams_per_user: int = Field(
        default=8, ge=0, description="open chat completions and responses, background ones included; 0 = no cap"
    )
    max_background_runs_per_user: int = Field(
        default=4, ge=0, description="background responses one subject may have running in this process; 0 = no cap"
    )
    responses_store_uri: str = Field(
        default="memory://", description="where responses and their events are kept: memory:// or redis://..."
    )
    response_retention: float = Field(
        default=3600.0, gt=0, description="seconds a response and its events are kept after their last change"
    )
    max_cost_per_request_usd: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="US dollars; a request may lower it; 0 = no cap"
    )
    spend_limit_usd_per_day: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="US dollars per subject per rolling 24 h; 0 = no limit"
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated")
    hsts_max_age: int = Field(default=0, ge=0, description="seconds; 0 = no Strict-Transport-Security")
    trust_proxy_headers: bool = Field(default=False, description="take the client IP from X-Forwarded-For")
    forwarded_allow_ips: str = Field(default="127.0.0.1", description="proxies trusted with TRUST_PROXY_HEADERS")
    jwt_max_lifetime: int = Field(
        default=30 * 86400, gt=0, description="seconds; tokens whose exp lies further from iat (or now) are refused"
    )
    jwt_leeway: float = Field(default=10.0, ge=0, le=300, description="seconds of clock skew allowed on exp, nbf, iat")
    http_header_timeout: float = Field(
        default=10.0, gt=0, description="seconds for a request line and its headers to arrive"
    )
    http_body_timeout: float = Field(default=30.0, gt=0, description="seconds for a whole request body to arrive")
    http_keepalive_timeout: int = Field(default=5, gt=0, description="seconds an idle keep-alive connection stays open")
    max_connections: int = Field(default=1000, gt=0, description="open HTTP connections; requests beyond get 503")
    api_docs_enabled: bool = Field(default=True, description="serve /docs, /redoc and /openapi.json")

    @field_validator("jwt_public_key", "jwt_public_key_file", "jwt_audience", "jwt_issuer", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `JWT_ISSUER=` in a .env means no issuer check, not a required empty issuer.
        return None if value == "" else value

    @field_validator("jwt_secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        length = len(value.get_secret_value())
        minimum = MIN_JWT_SECRET_LENGTH.get(info.data.get("jwt_algorithm", "HS256"), 0)
        if length < minimum:
            raise ValueError(
                f"must be set to a secret of at least {minimum} characters (got {length}); "
                "generate one with python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value

    @field_validator("jwt_public_key_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
        return path

    @field_validator("rate_limit_chat_completions", "rate_limit_default", "rate_limit_per_ip")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit: use e.g. 60/minute, or 10/second;300/hour") from None
        return value

    @field_validator("rate_limit_storage_uri", "responses_store_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        scheme = value.partition("://")[0]
        if scheme not in RATE_LIMIT_STORAGE_SCHEMES:
            raise ValueError(f"{value!r}: expected memory:// or redis://host:port (also rediss://, redis+unix://)")
        return value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _verification_key_usable(self) -> GatewaySettings:
        self.jwt_verification_key()
        return self

    def jwt_verification_key(self) -> str | PublicKey:
        """The HMAC secret, or the issuer's public key of the configured algorithm's type."""
        if self.jwt_algorithm in HMAC_ALGORITHMS:
            if self.jwt_public_key or self.jwt_public_key_file:
                raise ValueError(
                    f"JWT_PUBLIC_KEY/JWT_PUBLIC_KEY_FILE need an RS/PS/ES JWT_ALGORITHM; {self.jwt_algorithm} "
                    "verifies with JWT_SECRET_KEY (one key per deployment: no HS/RS confusion)"
                )
            return self.jwt_secret_key.get_secret_value()
        if bool(self.jwt_public_key) == bool(self.jwt_public_key_file):
            raise ValueError(f"JWT_ALGORITHM={self.jwt_algorithm} needs one of JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE")
        pem = self.jwt_public_key or (self.jwt_public_key_file.read_text() if self.jwt_public_key_file else "")
        try:
            # PyJWT's own preparation: checks the key's type, and an EC key's curve, against the algorithm.
            key = jwt.get_algorithm_by_name(self.jwt_algorithm).prepare_key(pem)
        except jwt.PyJWTError as exc:
            raise ValueError(f"JWT_PUBLIC_KEY(_FILE) is not usable with {self.jwt_algorithm}: {exc}") from None
        if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
            raise ValueError("JWT_PUBLIC_KEY(_FILE) holds a private key: configure the issuer's public key")
        return key
