"""Mutual TLS between the services: the mesh answers, and a caller without a certificate of the mesh's CA is
refused by every gRPC service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentmesh.rpc.healthcheck import check
from agentmesh.rpc.tls import TlsFiles
from tests.e2e.conftest import mint_token
from tests.support.certificates import Issued, issue
from tests.support.processes import ProcessMesh, ServiceProcess, process_mesh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return issue(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(certificates: Issued, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    # Two workers: their address-list target names no host, so the certificate's name is given explicitly.
    env = {**certificates.env(), "GRPC_TLS_SERVER_NAME": "localhost"}
    with process_mesh(tmp_path_factory.mktemp("mtls"), env=env, workers=2) as running:
        yield running


def _grpc_services(mesh: ProcessMesh) -> list[ServiceProcess]:
    return [mesh.orchestrator, *mesh.workers, mesh.synthesizer]


def _check(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


def test_the_mesh_answers_over_mutual_tls(secured: ProcessMesh) -> None:
    reply = httpx.post(
        f"{secured.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": "Describe Paris\nDescribe Rome"}]},
        headers={"Authorization": f"Bearer {mint_token(secured.jwt_secret)}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert "Describe Rome" in reply.json()["choices"][0]["message"]["content"]


def test_a_client_with_the_mesh_certificate_is_served(secured: ProcessMesh, certificates: Issued) -> None:
    credentials = grpc.ssl_channel_credentials(
        certificates.ca.read_bytes(), certificates.key.read_bytes(), certificates.cert.read_bytes()
    )
    for service in _grpc_services(secured):
        with grpc.secure_channel(f"localhost:{service.port}", credentials) as channel:
            assert _check(channel) == health_pb2.HealthCheckResponse.SERVING, service.log_path.name


def test_a_plaintext_client_is_refused_by_every_service(secured: ProcessMesh) -> None:
    for service in _grpc_services(secured):
        with grpc.insecure_channel(service.address) as channel, pytest.raises(grpc.RpcError) as refused:
            _check(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, service.log_path.name


def test_a_tls_client_without_a_certificate_is_refused_by_every_service(
    secured: ProcessMesh, certificates: Issued
) -> None:
    credentials = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
    for service in _grpc_services(secured):
        with (
            grpc.secure_channel(f"localhost:{service.port}", credentials) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            _check(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, service.log_path.name


def test_a_certificate_from_another_ca_is_refused_by_every_service(
    secured: ProcessMesh, certificates: Issued, tmp_path: Path
) -> None:
    stranger = issue(tmp_path, "stranger")
    credentials = grpc.ssl_channel_credentials(
        certificates.ca.read_bytes(), stranger.key.read_bytes(), stranger.cert.read_bytes()
    )
    for service in _grpc_services(secured):
        with (
            grpc.secure_channel(f"localhost:{service.port}", credentials) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            _check(channel)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, service.log_path.name


def test_the_container_healthcheck_speaks_mutual_tls(secured: ProcessMesh, certificates: Issued) -> None:
    tls = TlsFiles(certificates.cert, certificates.key, certificates.ca, server_name="localhost")
    for service in _grpc_services(secured):
        assert check(service.address, tls=tls) == "SERVING", service.log_path.name
