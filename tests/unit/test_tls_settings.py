"""GRPC_TLS_* are checked at start-up: complete, readable, and turned into credentials only when set."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agentmesh.settings import GrpcTlsSettings
from tests.support.certificates import issue


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> GrpcTlsSettings:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return GrpcTlsSettings()


def test_unset_means_plaintext(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tls = _settings(monkeypatch, tmp_path, GRPC_TLS_CA_FILE="").grpc_tls
    assert not tls.enabled
    assert tls.server_credentials() is None and tls.channel_credentials() is None


def test_all_three_give_server_and_channel_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    issued = issue(tmp_path / "pki")
    tls = _settings(monkeypatch, tmp_path, **issued.env(), GRPC_TLS_SERVER_NAME="worker").grpc_tls
    assert tls.server_credentials() is not None and tls.channel_credentials() is not None
    assert tls.channel_options() == [("grpc.ssl_target_name_override", "worker")]


@pytest.mark.parametrize(
    ("unset", "message"),
    [("GRPC_TLS_KEY_FILE", "go together"), ("GRPC_TLS_CERT_FILE", "go together")],
)
def test_a_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unset: str, message: str) -> None:
    env = issue(tmp_path / "pki").env()
    del env["GRPC_TLS_CA_FILE"]
    del env[unset]
    with pytest.raises(ValidationError, match=message):
        _settings(monkeypatch, tmp_path, **env)


def test_a_ca_alone_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    issued = issue(tmp_path / "pki")
    with pytest.raises(ValidationError, match="needs GRPC_TLS_CERT_FILE"):
        _settings(monkeypatch, tmp_path, GRPC_TLS_CA_FILE=str(issued.ca))


def test_a_missing_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"nowhere\.pem is not a readable file"):
        _settings(monkeypatch, tmp_path, GRPC_TLS_CERT_FILE="/nowhere.pem", GRPC_TLS_KEY_FILE="/nowhere.pem")
