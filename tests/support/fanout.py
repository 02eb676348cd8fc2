"""Big fan-outs through a real mesh on the fake Anthropic API: the requests, and what they cost.

Shared by the end-to-end tests and the benches (``bench/prompt_cache.py``, ``bench/documents.py``): a request
carrying a long shared context or many documents, the plan the fake planner is scripted to return, and the
figures read back from the usage object and from what the fake itself counted and priced.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import mint_token
from tests.support.fake_anthropic import FakeAnthropicProcess, agent_of
from tests.support.processes import ProcessMesh, process_mesh

API_KEY = "sk-ant-fanout-0123456789"
MODEL = "claude-haiku-4-5-20251001"

# The fake's tokens are characters // 4; these are claude-haiku-4-5's prices, USD per million tokens.
CHARS_PER_TOKEN = 4
INPUT_PER_MTOK, OUTPUT_PER_MTOK = 1.0, 5.0
CACHE_WRITE, CACHE_READ = 1.25, 0.1


@contextmanager
def fanout_mesh(
    workdir: Path, fake: FakeAnthropicProcess, env: Mapping[str, str] | None = None
) -> Iterator[ProcessMesh]:
    """The four services on ``fake``, every agent on claude-haiku-4-5 (a 4,096-token cache minimum), 64 subtasks."""
    settings = {
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "MAX_SUBTASKS": "64",
        "ORCHESTRATOR_MODEL": MODEL,
        "WORKER_MODEL": MODEL,
        "SYNTHESIZER_MODEL": MODEL,
        **(env or {}),
    }
    with process_mesh(workdir, env=settings) as mesh:
        yield mesh


def shared_context(tokens: int) -> str:
    """A long policy of numbered clauses, ``tokens`` of the fake's tokens long."""
    clauses, size, number = [], 0, 1
    while size < tokens * CHARS_PER_TOKEN:
        clause = f"Clause {number}: a supplier shall keep record {number * 7919 % 10007} for {number % 12 + 1} years."
        clauses.append(clause)
        size += len(clause) + 1
        number += 1
    return "\n".join(clauses)[: tokens * CHARS_PER_TOKEN]


def fanout_plan(subtasks: int) -> dict[str, Any]:
    return {
        "subtasks": [
            {
                "id": f"t{i}",
                "title": f"clauses {i}",
                "instruction": f"Check clauses {i} of the policy",
                "depends_on": [],
            }
            for i in range(1, subtasks + 1)
        ]
    }


def document(number: int, tokens: int) -> tuple[str, str]:
    """(name, text) of a contract ``tokens`` long whose every line names it."""
    line = f"Contract {number:03d}: the parties agree to terms of contract {number:03d}."
    text = "\n".join([line] * (tokens * CHARS_PER_TOKEN // (len(line) + 1) + 1))[: tokens * CHARS_PER_TOKEN]
    return f"contract-{number:03d}.md", text


def file_part(name: str, text: str) -> dict[str, Any]:
    data = base64.b64encode(text.encode()).decode()
    return {"type": "file", "file": {"filename": name, "file_data": f"data:text/markdown;base64,{data}"}}


def chat(mesh: ProcessMesh, content: str | list[dict[str, Any]], **fields: Any) -> tuple[dict[str, Any], float]:
    """A non-streaming chat completion through the gateway (``fields`` added to its body), and its wall time."""
    started = time.perf_counter()
    response = httpx.post(
        f"{mesh.base_url}/v1/chat/completions",
        json={"model": "agentmesh", "messages": [{"role": "user", "content": content}], **fields},
        headers={"Authorization": f"Bearer {mint_token(mesh.jwt_secret)}"},
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json(), elapsed


def input_usd(row: dict[str, Any]) -> float:
    """The input part of a usage row's price: uncached, written and read tokens."""
    tokens: float = (
        row["input_tokens"]
        + CACHE_WRITE * row["cache_creation_input_tokens"]
        + CACHE_READ * row["cache_read_input_tokens"]
    )
    return tokens * INPUT_PER_MTOK / 1_000_000


def usage_usd(usage: dict[str, Any]) -> float:
    """What a usage the fake sent costs at its prices (its field names are the API's, like a usage row's)."""
    output: int = usage["output_tokens"]
    return input_usd(usage) + output * OUTPUT_PER_MTOK / 1_000_000


@dataclass
class Fanout:
    """One run's figures: the workers' usage as the answer reports it, and the fake's own count."""

    answer: dict[str, Any]
    seconds: float
    worker_requests: list[dict[str, Any]]
    fake_cost_usd: float

    @property
    def workers(self) -> list[dict[str, Any]]:
        return [row for row in self.answer["usage"]["agents"] if row["agent"] == "worker"]

    @property
    def worker_input_usd(self) -> float:
        return sum(input_usd(row) for row in self.workers)

    @property
    def worker_input_tokens(self) -> int:
        fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        return sum(row[field] for row in self.workers for field in fields)


def run_fanout(
    mesh: ProcessMesh,
    fake: FakeAnthropicProcess,
    content: str | list[dict[str, Any]],
    plan: Any,
    default: Mapping[str, Any] | None = None,
) -> Fanout:
    """Runs one request whose planner (the first call) answers ``plan``, every call behaving as ``default``; the
    fake is reset first, its cache too."""
    fake.control("POST", "reset")
    if default:
        fake.control("POST", "default", dict(default))
    fake.script({**(default or {}), "tool_input": plan})
    answer, seconds = chat(mesh, content)
    requests = fake.requests()
    workers = [r for r in requests if agent_of(r) == "worker"]
    cost = sum(usage_usd(r["usage"]) for r in requests if r["usage"])
    return Fanout(answer, seconds, workers, cost)
