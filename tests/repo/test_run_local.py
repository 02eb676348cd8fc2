"""scripts/run_local.py: WORKER_REPLICAS / SYNTHESIZER_REPLICAS become processes on their own ports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT


@pytest.fixture(scope="module")
def run_local() -> ModuleType:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))  # run_local imports generate_jwt as a sibling
    spec = importlib.util.spec_from_file_location("run_local_under_test", REPO_ROOT / "scripts" / "run_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _specs(run_local: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = run_local.LocalMeshSettings()
    return {spec.name: spec for spec in run_local.build_specs(settings)}


def test_one_replica_keeps_the_plain_names_and_targets(
    run_local: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    specs = _specs(run_local, monkeypatch, tmp_path)
    assert list(specs) == ["worker", "synthesizer", "orchestrator", "gateway"]
    assert specs["orchestrator"].env["WORKER_TARGET"] == "127.0.0.1:50052"
    assert specs["worker"].env["GRPC_LISTEN"] == "127.0.0.1:50052"
    assert not specs["worker"].replica


def test_replicas_get_their_own_ports_and_one_round_robin_target(
    run_local: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    specs = _specs(run_local, monkeypatch, tmp_path, WORKER_REPLICAS="3", SYNTHESIZER_REPLICAS="2")
    workers = [specs[f"worker-{k}"] for k in (1, 2, 3)]
    assert [w.env["GRPC_LISTEN"] for w in workers] == ["127.0.0.1:50052", "127.0.0.1:50152", "127.0.0.1:50252"]
    assert [w.env["METRICS_PORT"] for w in workers] == ["9102", "9202", "9302"]
    assert all(w.replica for w in workers)
    downstream = specs["orchestrator"].env
    assert downstream["WORKER_TARGET"] == "ipv4:127.0.0.1:50052,127.0.0.1:50152,127.0.0.1:50252"
    assert downstream["SYNTHESIZER_TARGET"] == "ipv4:127.0.0.1:50053,127.0.0.1:50153"
    ports = [port.port for spec in specs.values() for port in spec.ports]
    assert len(ports) == len(set(ports))
    listing = run_local.describe_processes(list(specs.values()))
    assert "worker-3" in listing and "127.0.0.1:50252" in listing and ".run/worker-3.log" in listing


def test_replicas_on_ipv6_loopback(run_local: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    specs = _specs(run_local, monkeypatch, tmp_path, WORKER_REPLICAS="2", WORKER_TARGET="[::1]:50052")
    assert specs["orchestrator"].env["WORKER_TARGET"] == "ipv6:[::1]:50052,[::1]:50152"


def test_replicas_need_an_ip_address(run_local: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="WORKER_REPLICAS needs an IP address"):
        _specs(run_local, monkeypatch, tmp_path, WORKER_REPLICAS="2", WORKER_TARGET="localhost:50052")
