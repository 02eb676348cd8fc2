"""The mesh the model-latency benches measure: the fake Messages API, and the four services on it as processes."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from tests.support.fake_anthropic import FakeAnthropicProcess, spawn_fake_anthropic
from tests.support.processes import ProcessMesh, process_mesh

API_KEY = "sk-ant-bench-0123456789"
MODEL = "claude-haiku-4-5-20251001"


@contextmanager
def fake_model_mesh(
    workers: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[tuple[ProcessMesh, FakeAnthropicProcess]]:
    """Every agent on one model of the fake API; no rate limits, up to 32 subtasks and 32 streams per token."""
    with spawn_fake_anthropic(api_key=API_KEY) as fake, tempfile.TemporaryDirectory() as workdir:
        settings = {
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": fake.base_url,
            "RATE_LIMIT_ENABLED": "false",
            "MAX_CONCURRENT_STREAMS_PER_USER": "0",  # one token holds all 32 streams
            "MAX_SUBTASKS": "32",
            "WORKER_MODEL": MODEL,
            "SYNTHESIZER_MODEL": MODEL,
            "ORCHESTRATOR_MODEL": MODEL,
            **(env or {}),
        }
        with process_mesh(Path(workdir), env=settings, workers=workers) as mesh:
            yield mesh, fake


def add_mesh_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--env``, for :func:`mesh_from_arguments`."""
    parser.add_argument("--workers", type=int, default=1, help="worker processes (replicas), as WORKER_REPLICAS")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for every service (repeatable)"
    )


def mesh_from_arguments(args: argparse.Namespace) -> AbstractContextManager[tuple[ProcessMesh, FakeAnthropicProcess]]:
    return fake_model_mesh(args.workers, dict(setting.split("=", 1) for setting in args.env))
