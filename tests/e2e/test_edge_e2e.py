"""The gateway's edge as deployed: one request id through all four services and upstream, one rate-limit budget
shared by two gateway processes through Redis, and start-up refusing a weak secret."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import (
    REPO_ROOT,
    ProcessMesh,
    ServiceProcess,
    free_port,
    process_mesh,
    spawn,
    wait_for_http_ready,
)
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.e2e

API_KEY = "sk-ant-edge-e2e-key-0123456789"
SECRET = "edge-e2e-" + "k" * 40


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropicProcess]:
    with spawn_fake_anthropic(api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def mesh(fake: FakeAnthropicProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
    with process_mesh(tmp_path_factory.mktemp("edge-mesh"), env=env) as running:
        yield running


def test_one_request_id_in_the_response_every_service_log_and_upstream(
    mesh: ProcessMesh, fake: FakeAnthropicProcess
) -> None:
    request_id = "edge-e2e.request_1"
    with httpx.stream(
        "POST",
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "stream": True, "messages": [{"role": "user", "content": "Describe Paris\nList"}]},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}", "X-Request-ID": request_id},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    # The client's id is echoed; the request's own id is that id with a unique suffix, the same everywhere.
    internal = json.loads(lines[0].removeprefix("data: "))["id"].removeprefix("chatcmpl-")
    assert re.fullmatch(rf"{re.escape(request_id)}-[0-9a-f]{{12}}", internal), internal

    upstream = fake.requests()
    assert len(upstream) == 4  # plan, two workers, synthesis
    assert {request["headers"].get("x-request-id") for request in upstream} == {internal}

    for service in mesh.services:
        records = service.log_records()
        ours = [index for index, record in enumerate(records) if record.get("request_id") == internal]
        assert ours, f"{service.name} logged nothing with the request id"
        # From the request's first line on, nothing is logged without a request id.
        anonymous = [r for r in records[ours[0] :] if not r.get("request_id")]
        assert not anonymous, (service.name, anonymous)


def start_gateway(workdir: Path, name: str, env: dict[str, str]) -> ServiceProcess:
    port = free_port()
    gateway = spawn("gateway", "gateway", {"API_HOST": "127.0.0.1", "API_PORT": str(port), **env}, workdir, name)
    gateway.port = port
    wait_for_http_ready(gateway, "/health")
    return gateway


def test_two_gateway_processes_share_one_budget_in_redis(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis_uri:
        env = {
            "JWT_SECRET_KEY": SECRET,
            "RATE_LIMIT_STORAGE_URI": redis_uri,
            "RATE_LIMIT_DEFAULT": "3/minute",
            "ORCHESTRATOR_TARGET": "127.0.0.1:1",  # /v1/models needs no orchestrator
        }
        gateways = [start_gateway(tmp_path, name, env) for name in ("gateway-a", "gateway-b")]
        try:
            headers = {"Authorization": f"Bearer {mint_token(SECRET, subject='shared-user')}"}
            answers: list[httpx.Response] = []
            for index in range(5):
                gateway = gateways[index % 2]
                answers.append(httpx.get(f"http://{gateway.address}/v1/models", headers=headers, timeout=10))
        finally:
            for gateway in gateways:
                gateway.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0", "0"]
    refused = answers[3]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 40 <= int(refused.headers["retry-after"]) <= 60


def test_start_up_refuses_a_short_secret_naming_the_variable(tmp_path: Path) -> None:
    env: dict[str, Any] = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "JWT_SECRET_KEY": "short"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "JWT_SECRET_KEY" in result.stderr
    assert "at least 32 characters (got 5)" in result.stderr
    assert "short" not in result.stderr.replace("shorter", "")
