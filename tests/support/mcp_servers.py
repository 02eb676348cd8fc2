"""Real MCP servers for tests: the repository's demo server (stdio or streamable HTTP) and mcp-server-time."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentmesh.teams.spec import AgentSpec
from agentmesh.teams.tools_spec import McpServerSpec
from agentmesh.tools import Toolbox
from tests.support.processes import REPO_ROOT, START_TIMEOUT_S, _child_env, free_port

DEMO = "agentmesh.tools.demo_server"


def demo_stdio(journal: Path, name: str = "demo", env: tuple[str, ...] = ()) -> McpServerSpec:
    return McpServerSpec(
        name=name, command="python", args=("-m", DEMO, "--test-tools", "--journal", str(journal)), env=env
    )


def time_server(name: str = "time") -> McpServerSpec:
    return McpServerSpec(name=name, command="python", args=("-m", "mcp_server_time", "--local-timezone", "UTC"))


def specialist(*servers: McpServerSpec, tools: tuple[str, ...] = (), name: str = "w") -> AgentSpec:
    return AgentSpec(
        team="t",
        role="worker",
        name=name,
        description="uses tools",
        provider="offline",
        model="m",
        max_tokens=100,
        prompt="P.",
        source=REPO_ROOT / "teams" / "t" / "workers" / f"{name}.md",
        mcp_servers=servers,
        tools=tools or tuple(f"{server.name}.*" for server in servers),
    )


def journal_events(path: Path, event: str) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [line for line in map(json.loads, path.read_text().splitlines()) if line["event"] == event]


@dataclass
class HttpDemo:
    """The demo server over streamable HTTP on a loopback port, as a child process of the test."""

    port: int
    journal: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def spec(self, name: str = "web", headers: tuple[tuple[str, str], ...] = ()) -> McpServerSpec:
        return McpServerSpec(name=name, url=self.url, headers=headers)

    def start(self) -> None:
        log = (self.journal.parent / f"http-demo-{self.port}.log").open("ab")
        args = ["--test-tools", "--http", str(self.port), "--journal", str(self.journal)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", DEMO, *args], env=_child_env({}), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        _wait_for_port(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def http_demo(tmp_path: Path) -> Iterator[HttpDemo]:
    server = HttpDemo(free_port(), tmp_path / "http-journal.jsonl")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo MCP server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the demo MCP server did not listen on {port} within {START_TIMEOUT_S}s")


async def until(toolbox: Toolbox, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Waits for ``condition`` to hold, re-checking whenever a server's state or tool list changes."""
    changed = asyncio.Event()

    def listener(_server: str, _reason: str) -> None:
        changed.set()

    toolbox.listeners.append(listener)
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await changed.wait()
                changed.clear()
    finally:
        toolbox.listeners.remove(listener)
