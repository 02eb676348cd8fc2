"""Schemathesis against the running gateway (the real mesh, offline model): no 5xx, and only documented answers.

Positive and negative cases from the gateway's own OpenAPI schema, a bounded number per operation, sent with a
valid token through the whole edge (rate limits on, with budgets high enough for the run). The schema is taken
from the app at import (schemathesis' fixture-based loader does not run on pytest 9), and a test checks that the
running gateway serves exactly that schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from tests.e2e.conftest import mint_token
from tests.gateway.conftest import gateway_settings
from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e
MAX_EXAMPLES = 40  # per operation and phase; derandomized, so the suite sends the same cases every run
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]


@pytest.fixture(scope="module")
def fuzzed_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    env = {"MAX_CONCURRENT_STREAMS_PER_USER": "4", "MAX_MESSAGES": "64", "MAX_TOTAL_CHARS": "20000"}
    with process_mesh(tmp_path_factory.mktemp("fuzz"), env=env) as mesh:
        yield mesh


OPENAPI = create_app(gateway_settings("127.0.0.1:1")).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
# Read every stream to its end: schemathesis otherwise hangs up after a few events, and a hang-up is a cancelled
# run (tested on its own in test_streaming), not a response to check.
schema.config.max_stream_events = 1_000_000


def steer(case: schemathesis.Case) -> None:
    """In valid cases, fills in what the schema cannot express (the served model, a supported role and content,
    ``n: 1``), so that they get past those 404s and 400s and run through the whole mesh. Invalid (negative) cases
    are sent as generated."""
    body: Any = case.body
    if (case.meta and case.meta.generation.mode.is_negative) or not isinstance(body, dict):
        return
    if isinstance(body.get("model"), str):
        body["model"] = "agentmesh"
    if "n" in body:
        body["n"] = 1
    for message in body.get("messages") if isinstance(body.get("messages"), list) else ():
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("role"), str):
            message["role"] = "user"
        if message.get("content") is None:
            message["content"] = "hello"
        for part in message["content"] if isinstance(message["content"], list) else ():
            if isinstance(part, dict) and isinstance(part.get("type"), str):
                part["type"] = "text"
                part.setdefault("text", "hello")


def test_the_gateway_serves_the_fuzzed_schema(fuzzed_mesh: ProcessMesh) -> None:
    assert httpx.get(f"{fuzzed_mesh.base_url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_gateway_answers_only_as_documented(case: schemathesis.Case, fuzzed_mesh: ProcessMesh) -> None:
    token = mint_token(fuzzed_mesh.jwt_secret, subject="fuzzer")
    steer(case)
    headers = {"Authorization": f"Bearer {token}"}
    case.call_and_validate(base_url=fuzzed_mesh.base_url, headers=headers, checks=CHECKS, timeout=30)


def test_the_mesh_logged_no_server_error(fuzzed_mesh: ProcessMesh) -> None:
    """Runs after the fuzzing (same module): a 5xx or a traceback anywhere would show in a service's log."""
    for service in fuzzed_mesh.services:
        records = service.log_records()
        assert not [r for r in records if r.get("level") in ("ERROR", "CRITICAL")], service.name
        assert "Traceback" not in Path(service.log_path).read_text(), service.name
