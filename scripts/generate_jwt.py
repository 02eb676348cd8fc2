"""Prints a bearer token for the gateway, signed with JWT_SECRET_KEY from the environment or `.env`.

Usage: python scripts/generate_jwt.py [--subject S] [--expires-in 7d|12h|30m|45s|3600] [--scope S ...]
                                      [--private-key issuer-key.pem]

The token carries JWT_AUDIENCE and JWT_ISSUER when they are set, as the gateway then requires them. With an
RS*/PS*/ES* JWT_ALGORITHM tokens normally come from the identity provider; --private-key signs test tokens.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
# The gateway refuses to start with a shorter key (RFC 7518 3.2: at least the hash's size).
MIN_SECRET_LENGTH = {"HS256": 32, "HS384": 48, "HS512": 64}
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TokenConfigError(Exception):
    """The signing key or algorithm is missing or unusable; the message says how to fix it."""


class _JwtSettings(BaseSettings):
    # Same precedence as the services: a real environment variable wins over `.env`; the working
    # directory's `.env` wins over the repository's (missing files are skipped).
    model_config = SettingsConfigDict(
        env_file=(REPO_ROOT / ".env", ".env"), env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: str = "HS256"
    jwt_audience: str | None = None
    jwt_issuer: str | None = None


@dataclass(frozen=True)
class SigningConfig:
    key: str  # the HMAC secret, or a PEM private key
    algorithm: str
    audience: str | None = None
    issuer: str | None = None


def load_signing_config(private_key_file: Path | None = None) -> SigningConfig:
    """The key, algorithm and claims the gateway started from the same place will check."""
    settings = _JwtSettings()
    algorithm = settings.jwt_algorithm.upper()
    claims = {"audience": settings.jwt_audience or None, "issuer": settings.jwt_issuer or None}
    if algorithm in ASYMMETRIC_ALGORITHMS:
        if private_key_file is None:
            raise TokenConfigError(
                f"JWT_ALGORITHM={algorithm}: tokens come from your identity provider; "
                "pass --private-key FILE (the issuer's PEM private key) to sign a test token"
            )
        return SigningConfig(private_key_file.read_text(), algorithm, **claims)
    if algorithm not in MIN_SECRET_LENGTH:
        expected = ", ".join([*MIN_SECRET_LENGTH, *ASYMMETRIC_ALGORITHMS])
        raise TokenConfigError(f"JWT_ALGORITHM={settings.jwt_algorithm!r}: expected one of {expected}")
    if settings.jwt_secret_key is None or not settings.jwt_secret_key.get_secret_value():
        raise TokenConfigError(
            "JWT_SECRET_KEY is not set in the environment, ./.env or the repository's .env: "
            "run `make env` to generate one into .env, or export it"
        )
    secret = settings.jwt_secret_key.get_secret_value()
    if len(secret) < MIN_SECRET_LENGTH[algorithm]:
        raise TokenConfigError(
            f"JWT_SECRET_KEY has {len(secret)} characters; {algorithm} needs at least {MIN_SECRET_LENGTH[algorithm]}"
        )
    return SigningConfig(secret, algorithm, **claims)


def parse_duration(text: str) -> int:
    """'7d', '12h', '30m', '45s' or plain seconds ('3600') → seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. 7d, 12h, 30m, 45s or 3600")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def mint_token(
    key: str,
    *,
    subject: str,
    expires_in_s: int,
    scopes: Sequence[str] = (),
    algorithm: str = "HS256",
    audience: str | None = None,
    issuer: str | None = None,
    now: int | None = None,
) -> str:
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, object] = {"sub": subject, "iat": issued_at, "exp": issued_at + expires_in_s}
    if scopes:
        claims["scope"] = " ".join(scopes)
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, key, algorithm=algorithm)


def mint_from_env(
    *,
    subject: str = "local-dev",
    expires_in_s: int = 12 * 3600,
    scopes: Sequence[str] = (),
    private_key_file: Path | None = None,
) -> str:
    """A token the gateway configured from the same environment / `.env` accepts."""
    config = load_signing_config(private_key_file)
    return mint_token(
        config.key,
        subject=subject,
        expires_in_s=expires_in_s,
        scopes=scopes,
        algorithm=config.algorithm,
        audience=config.audience,
        issuer=config.issuer,
    )


def _duration_arg(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subject", default="local-dev", help="the `sub` claim (default: local-dev)")
    parser.add_argument(
        "--expires-in", type=_duration_arg, default="7d", metavar="DURATION", help="7d, 12h, 30m, 45s or seconds"
    )
    parser.add_argument("--scope", action="append", default=[], help="add a scope (repeatable)")
    parser.add_argument("--private-key", type=Path, help="PEM private key, for an RS/PS/ES JWT_ALGORITHM")
    args = parser.parse_args(argv)
    try:
        token = mint_from_env(
            subject=args.subject, expires_in_s=args.expires_in, scopes=args.scope, private_key_file=args.private_key
        )
    except (TokenConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
