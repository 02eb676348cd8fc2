"""docker-compose.yml keeps the properties `docker compose up --scale worker=3` relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentmesh.settings import CommonSettings
from orchestrator_svc.routing import parse_targets

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return dict(document["services"])


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    """Compose accepts both the mapping and the list (``KEY=value``) form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {key: value for key, _, value in (item.partition("=") for item in env)}
    return {key: None if value is None else str(value) for key, value in env.items()}


def test_the_four_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert {"gateway", "orchestrator", "worker", "synthesizer"} <= services.keys()


@pytest.mark.parametrize("name", ["orchestrator", "worker", "synthesizer"])
def test_grpc_services_are_scalable_and_unpublished(services: dict[str, dict[str, Any]], name: str) -> None:
    assert "container_name" not in services[name], f"{name}: a container_name prevents --scale"
    assert "ports" not in services[name], f"{name}: a host port prevents --scale; only the gateway publishes one"


def test_only_the_gateway_publishes_port_8000(services: dict[str, dict[str, Any]]) -> None:
    assert any(str(port).split(":")[-2:] == ["8000", "8000"] for port in services["gateway"]["ports"])


def test_targets_resolve_every_replica_through_dns(services: dict[str, dict[str, Any]]) -> None:
    orchestrator = _environment(services["orchestrator"])
    assert (orchestrator.get("WORKER_TARGET") or "").startswith("dns:///")
    assert (orchestrator.get("SYNTHESIZER_TARGET") or "").startswith("dns:///")
    assert (_environment(services["gateway"]).get("ORCHESTRATOR_TARGET") or "").startswith("dns:///")


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name in ("gateway", "orchestrator", "worker", "synthesizer"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name, needs in {"gateway": ["orchestrator"], "orchestrator": ["worker", "synthesizer"]}.items():
        for dependency in needs:
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"


def test_the_observability_profile_scrapes_every_worker_replica_and_traces_every_service(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["jaeger"]["profiles"] == ["observability"]
    config = yaml.safe_load((COMPOSE_FILE.parent / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (worker_sd,) = jobs["agentmesh-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"] and worker_sd["type"] == "A" and worker_sd["port"] == 9102
    for name in ("gateway", "orchestrator", "worker", "synthesizer"):
        assert _environment(services[name])["OTEL_SERVICE_NAME"] == f"agentmesh-{name}"


def test_gateway_replicas_share_rate_limits_through_redis(services: dict[str, dict[str, Any]]) -> None:
    assert _environment(services["gateway"])["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert services["gateway"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["redis"] and "ports" not in services["redis"]


@pytest.mark.parametrize("name", ["orchestrator", "worker", "synthesizer"])
def test_grpc_services_listen_on_every_interface_of_their_container(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert (_environment(services[name])["GRPC_LISTEN"] or "").startswith("[::]:")


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """The real parser (Debian's docker-compose 1.29, which .ci/run installs), on a copy with an empty .env."""
    binary = shutil.which("docker-compose")
    if binary is None:
        why = "docker-compose is not installed (apt-get install -y docker-compose; .ci/run installs it in CI)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {why}", pytrace=False)
        pytest.skip(why)
    (tmp_path / "docker-compose.yml").write_bytes(COMPOSE_FILE.read_bytes())
    (tmp_path / ".env").write_text("JWT_SECRET_KEY=" + "k" * 40 + "\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    result = subprocess.run(
        [binary, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_containers_get_to_finish_their_drain() -> None:
    """Compose's stop grace (before SIGKILL) outlasts the services' default SHUTDOWN_GRACE_PERIOD."""
    anchor = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["x-service"]
    grace = float(str(anchor["stop_grace_period"]).removesuffix("s"))
    assert grace > CommonSettings.model_fields["shutdown_grace_period"].default


def test_specialist_worker_services_scale_apart_and_the_orchestrator_routes_to_them(
    services: dict[str, dict[str, Any]],
) -> None:
    agents = {name: _environment(services[name]).get("WORKER_AGENTS") for name in ("worker-research", "worker-writer")}
    assert agents == {"worker-research": "research/researcher,research/analyst", "worker-writer": "research/writer"}
    for name in agents:
        assert "ports" not in services[name] and "container_name" not in services[name], name
        assert services["orchestrator"]["depends_on"][name]["condition"] == "service_healthy"
    targets = parse_targets(_environment(services["orchestrator"])["WORKER_TARGETS"] or "")
    assert targets == {
        "research/researcher": "dns:///worker-research:50052",
        "research/analyst": "dns:///worker-research:50052",
        "research/writer": "dns:///worker-writer:50052",
    }
    assert "./teams:/app/teams:ro" in services["worker"]["volumes"]
