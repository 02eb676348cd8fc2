"""scripts/generate_jwt.py mints what the gateway, configured from the same environment, accepts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.edge.auth import TokenVerifier
from tests.gateway.conftest import SECRET, gateway_settings
from tests.support.processes import REPO_ROOT


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_jwt_under_test", REPO_ROOT / "scripts" / "generate_jwt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def edge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "JWT_SECRET_KEY": SECRET,
        "JWT_ALGORITHM": "HS256",
        "JWT_AUDIENCE": "",
        "JWT_ISSUER": "",
    }.items():
        monkeypatch.setenv(name, value)


def minted(script: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert script.main(["--subject", "carol", "--expires-in", "2h", "--scope", "chat", "--scope", "models", *args]) == 0
    return capsys.readouterr().out.strip()


def test_subject_expiry_scopes_audience_issuer(
    script: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_AUDIENCE", "agentmesh-api")
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    token = minted(script, capsys)
    settings = gateway_settings("127.0.0.1:1", jwt_audience="agentmesh-api", jwt_issuer="https://issuer.example")
    principal = TokenVerifier(settings).verify(f"Bearer {token}")
    assert principal.subject == "carol"
    assert principal.claims["scope"] == "chat models"
    assert principal.claims["exp"] - principal.claims["iat"] == 7200


def test_es256_with_a_private_key_file(
    script: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "issuer-key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setenv("JWT_ALGORITHM", "ES256")
    token = minted(script, capsys, "--private-key", str(key_file))
    settings = gateway_settings("127.0.0.1:1", jwt_algorithm="ES256", jwt_public_key=public.decode())
    assert TokenVerifier(settings).verify(f"Bearer {token}").subject == "carol"

    assert script.main([]) == 2
    assert "--private-key" in capsys.readouterr().err


def test_refuses_a_secret_too_short_for_the_algorithm(
    script: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_ALGORITHM", "HS512")
    assert script.main([]) == 2
    assert "HS512 needs at least 64" in capsys.readouterr().err
