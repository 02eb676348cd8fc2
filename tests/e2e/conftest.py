"""Fixtures that start the whole mesh as real processes; slow to start, so shared per module."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from tests.support.processes import ProcessMesh, process_mesh

pytestmark = pytest.mark.e2e


def mint_token(secret: str, subject: str = "e2e-user", ttl_s: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": subject, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessMesh]:
    with process_mesh(tmp_path_factory.mktemp("mesh")) as running:
        yield running


@pytest.fixture(scope="module")
def token(mesh: ProcessMesh) -> str:
    return mint_token(mesh.jwt_secret)
