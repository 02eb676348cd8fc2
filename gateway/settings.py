"""The gateway's configuration, read from the environment (and `.env`) and validated at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from agentmesh.settings import CommonSettings

MIN_JWT_SECRET_LENGTH = 32


class GatewaySettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    orchestrator_target: str = "localhost:50051"
    # Required: the empty default only exists so that a missing value gets the same clear message as a short one.
    jwt_secret_key: SecretStr = Field(default=SecretStr(""), validate_default=True)
    # Only HMAC algorithms: the gateway verifies tokens with a shared secret, never a public key.
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    service_model_name: str = Field(default="agentmesh", min_length=1)
    stream_progress: Literal["reasoning", "none"] = "reasoning"
    request_timeout: float = Field(default=120.0, gt=0, description="seconds; the deadline of Orchestrator.Run")
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    max_request_body_size: int = Field(default=1_048_576, gt=0, description="bytes")

    @field_validator("jwt_secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        length = len(value.get_secret_value())
        if length < MIN_JWT_SECRET_LENGTH:
            raise ValueError(
                f"must be set to a secret of at least {MIN_JWT_SECRET_LENGTH} characters (got {length}); "
                "generate one with python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return value
