"""deploy/k8s: accepted by the API schemas of two Kubernetes versions (strict), and keeps the properties the mesh
relies on there: headless gRPC Services, native probes, secrets by reference, a locked-down securityContext,
a termination grace longer than the drain, autoscaling, disruption budgets and network policies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from orchestrator_svc.routing import parse_targets
from scripts.k8s_teams import render, team_files, volume_items

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "deploy" / "k8s"
# The oldest and newest API versions whose schemas kubernetes-validate ships offline.
KUBERNETES_VERSIONS = ["1.32.0", "1.37.0"]
GRPC_SERVICES = {"orchestrator": 50051, "worker": 50052, "synthesizer": 50053}
MESH = ["gateway", *GRPC_SERVICES]
SECRET_NAMES = {"JWT_SECRET_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"}

Resource = dict[str, Any]


def _kustomization() -> Resource:
    return dict(yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8")))


def _resources() -> list[Resource]:
    documents: list[Resource] = []
    for name in _kustomization()["resources"]:
        documents.extend(d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d)
    return documents


RESOURCES = _resources()


def _one(kind: str, name: str) -> Resource:
    (found,) = [r for r in RESOURCES if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def _pod(name: str) -> Resource:
    return dict(_one("Deployment", name)["spec"]["template"]["spec"])


def _containers() -> Iterator[tuple[str, Resource]]:
    for deployment in (r for r in RESOURCES if r["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment["metadata"]["name"], container


def _env(name: str) -> dict[str, Resource]:
    (container,) = _pod(name)["containers"]
    return {item["name"]: item for item in container.get("env", [])}


def _config() -> dict[str, str]:
    return dict(_one("ConfigMap", "agentmesh-config")["data"])


def test_kustomization_lists_every_manifest() -> None:
    listed = set(_kustomization()["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_validates_strictly_against_the_kubernetes_api(resource: Resource, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_services_are_headless_and_targets_resolve_every_pod(name: str) -> None:
    service = _one("Service", name)
    assert service["spec"]["clusterIP"] == "None", "gRPC balances per connection: the client must see every pod"
    assert service["spec"]["ports"][0]["port"] == GRPC_SERVICES[name]
    assert _config()[f"{name.upper()}_TARGET"] == f"dns:///{name}:{GRPC_SERVICES[name]}"


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_services_have_native_grpc_probes_and_listen_on_the_pod(name: str) -> None:
    (container,) = _pod(name)["containers"]
    port = GRPC_SERVICES[name]
    assert container["readinessProbe"]["grpc"] == {"port": port, "service": f"agentmesh.v1.{name.capitalize()}"}
    # Liveness asks a name that stays SERVING while the process runs: an orchestrator is not restarted because
    # its workers are down.
    assert container["livenessProbe"]["grpc"] == {"port": port, "service": "liveness"}
    assert _env(name)["GRPC_LISTEN"]["value"] == f"0.0.0.0:{port}"


def test_the_gateway_has_http_probes() -> None:
    (container,) = _pod("gateway")["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize(
    ("deployment", "container"), list(_containers()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_container_has_resources_and_a_locked_down_security_context(deployment: str, container: Resource) -> None:
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys(), f"{deployment}: resources.{bound}"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    pod = _pod(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False


def test_the_mesh_runs_as_the_images_numeric_user() -> None:
    (user,) = re.findall(r"^USER (\d+)(?::\d+)?$", (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"), re.M)
    for name in MESH:
        assert _pod(name)["securityContext"]["runAsUser"] == int(user), name


@pytest.mark.parametrize("name", MESH)
def test_a_read_only_root_leaves_tmp_writable(name: str) -> None:
    pod = _pod(name)
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("name", MESH)
def test_termination_grace_outlasts_the_drain(name: str) -> None:
    drain = float(_config()["SHUTDOWN_GRACE_PERIOD"])
    assert float(_config()["REQUEST_TIMEOUT"]) < drain, "the drain must let the longest request finish"
    assert _pod(name)["terminationGracePeriodSeconds"] > drain


def test_secrets_come_only_from_the_secret_by_reference() -> None:
    assert not [r for r in RESOURCES if r["kind"] == "Secret"], "no Secret with values in the repository"
    assert not SECRET_NAMES & _config().keys()
    for deployment, container in _containers():
        for item in container.get("env", []):
            if item["name"] in SECRET_NAMES:
                assert "value" not in item, f"{deployment}: {item['name']} is a literal"
                assert item["valueFrom"]["secretKeyRef"]["name"] == "agentmesh-secrets"
    assert "valueFrom" in _env("gateway")["JWT_SECRET_KEY"]
    assert "ANTHROPIC_API_KEY" not in _env("gateway"), "the edge holds no model key"
    for name in GRPC_SERVICES:
        assert "valueFrom" in _env(name)["ANTHROPIC_API_KEY"]


def test_reflection_is_off_and_rate_limits_are_shared_through_redis() -> None:
    assert _config()["GRPC_REFLECTION"] == "false"
    assert _config()["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert _one("Service", "redis")["spec"]["ports"][0]["port"] == 6379


@pytest.mark.parametrize("name", ["worker", "synthesizer"])
def test_workers_and_synthesizers_autoscale(name: str) -> None:
    target = _one("HorizontalPodAutoscaler", name)["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", name)


@pytest.mark.parametrize("name", MESH)
def test_every_service_has_a_disruption_budget(name: str) -> None:
    selector = _one("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
    assert selector == _one("Deployment", name)["spec"]["selector"]["matchLabels"]


def _ingress_peers(name: str) -> list[tuple[str | None, int]]:
    """(app name of the allowed pods, or None for a namespace/any peer; port) of the policy for ``name``."""
    peers = []
    for rule in _one("NetworkPolicy", name)["spec"].get("ingress", []):
        for port in rule["ports"]:
            for peer in rule.get("from", [{}]):
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                peers.append((labels.get("app.kubernetes.io/name"), port["port"]))
    return peers


def test_network_policy_allows_only_gateway_to_orchestrator_to_workers_and_synthesizers() -> None:
    deny = _one("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    assert ("gateway", 50051) in _ingress_peers("orchestrator")
    assert ("orchestrator", 50052) in _ingress_peers("worker")
    assert ("orchestrator", 50053) in _ingress_peers("synthesizer")
    for name, port in GRPC_SERVICES.items():
        callers = {peer for peer, p in _ingress_peers(name) if p == port}
        assert callers == {"orchestrator" if name != "orchestrator" else "gateway"}, name


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_model_callers_may_reach_https_and_nothing_private(name: str) -> None:
    rules = _one("NetworkPolicy", name)["spec"]["egress"]
    https = [r for r in rules if any(p["port"] == 443 for p in r["ports"])]
    (block,) = [peer["ipBlock"] for peer in https[0]["to"]]
    assert block["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["except"]


def test_the_teams_configmap_is_fresh_and_every_service_mounts_it_as_folders() -> None:
    assert (K8S / "teams.yaml").read_text(encoding="utf-8") == render(), "run: python scripts/k8s_teams.py"
    items = volume_items(list(team_files()))
    for name in [*MESH, "worker-research"]:
        pod = _pod(name)
        (volume,) = [v for v in pod["volumes"] if v["name"] == "teams"]
        assert volume["configMap"] == {"name": "agentmesh-teams", "items": items}, name
        (container,) = pod["containers"]
        assert {"name": "teams", "mountPath": "/app/teams", "readOnly": True} in container["volumeMounts"], name
    assert _config()["TEAMS_DIR"] == "/app/teams"


def test_a_specialist_group_is_its_own_deployment_reached_through_worker_targets() -> None:
    agents = _env("worker-research")["WORKER_AGENTS"]["value"]
    assert agents == "research/researcher,research/analyst,research/writer"
    targets = parse_targets(_config()["WORKER_TARGETS"])
    assert set(targets) == set(agents.split(",")) and set(targets.values()) == {"dns:///worker-research:50052"}
    assert _one("Service", "worker-research")["spec"]["clusterIP"] == "None"
    assert ("orchestrator", 50052) in _ingress_peers("worker-research")
    egress = _one("NetworkPolicy", "orchestrator")["spec"]["egress"]
    reached = {
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for r in egress
        for peer in r["to"]
    }
    assert "worker-research" in reached
    selector = _one("PodDisruptionBudget", "worker-research")["spec"]["selector"]["matchLabels"]
    assert selector == _one("Deployment", "worker-research")["spec"]["selector"]["matchLabels"]
