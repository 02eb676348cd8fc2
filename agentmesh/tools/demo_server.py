"""The repository's own MCP server: a few deterministic tools for the research team, and fault tools for tests.

    python -m agentmesh.tools.demo_server                         # stdio (what teams/research starts)
    python -m agentmesh.tools.demo_server --http 8765             # streamable HTTP on 127.0.0.1:8765/mcp
    python -m agentmesh.tools.demo_server --test-tools --journal F  # + fail, hang, big, grow, stats, env_var

Built on the SDK's ``MCPServer``. ``--journal`` appends one JSON line per process start, session initialization,
tool call, ``notifications/cancelled`` received and hung call cancelled, so a test sees what the server saw even
across restarts; ``stats`` reports the same counts of this process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

FACTS = {
    "mcp": "The Model Context Protocol (MCP) is an open standard, published by Anthropic in November 2024, "
    "for connecting models to tools and data over JSON-RPC (stdio or streamable HTTP).",
    "grpc": "gRPC is an RPC framework open-sourced by Google in 2015; it runs over HTTP/2 with Protocol Buffers.",
    "http/2": "HTTP/2 was published as RFC 7540 in May 2015 (revised as RFC 9113 in 2022).",
    "python": "Python was first released by Guido van Rossum in February 1991.",
    "prometheus": "Prometheus joined the Cloud Native Computing Foundation in 2016, its second project after "
    "Kubernetes.",
    "opentelemetry": "OpenTelemetry formed in 2019 from the merger of OpenTracing and OpenCensus.",
}


@dataclass
class Journal:
    """What this server saw; appended to ``path`` (when given) as JSON lines."""

    path: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)

    def record(self, event: str, **details: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if self.path is not None:
            line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **details})
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        self.changed.set()
        self.changed = anyio.Event()


def build_server(journal: Journal, test_tools: bool = False) -> MCPServer:
    async def observe(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            journal.record("initialize")
        elif ctx.method == "tools/call":
            journal.record("call", tool=(ctx.params or {}).get("name"))
        elif ctx.method == "notifications/cancelled":
            journal.record("cancelled_notification", request_id=(ctx.params or {}).get("requestId"))
        return await call_next(ctx)

    # WARNING: over stdio the server's log is the worker's stderr; a line per request would drown the worker's own.
    server = MCPServer("agentmesh-demo", version="1", middleware=[observe], log_level="WARNING")

    @server.tool()
    def lookup_fact(topic: str) -> str:
        """Look up a short, sourced fact about a technology topic (mcp, grpc, http/2, python, prometheus, ...)."""
        fact = FACTS.get(topic.strip().lower())
        if fact is None:
            return f"No fact on {topic!r}; known topics: {', '.join(sorted(FACTS))}."
        return fact

    @server.tool()
    def word_count(text: str) -> int:
        """Count the words of a text."""
        return len(text.split())

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    if test_tools:
        _add_test_tools(server, journal)
    return server


def _add_test_tools(server: MCPServer, journal: Journal) -> None:
    @server.tool()
    def fail(message: str) -> str:
        """Raise an error with this message."""
        raise ToolError(message)

    @server.tool()
    def error_result(message: str) -> CallToolResult:
        """Return a result marked isError, with this message."""
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)

    @server.tool()
    async def hang(seconds: float = 3600.0) -> str:
        """Wait this long (until cancelled, by default)."""
        journal.record("hang_started")
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            journal.record("hang_cancelled")
            raise
        return "done waiting"

    @server.tool()
    def big(chars: int) -> str:
        """Return a text of this many characters."""
        return "x" * chars

    @server.tool()
    def env_var(name: str) -> str:
        """Whether this server's environment has the variable, and its length (never the value)."""
        value = os.environ.get(name)
        return "unset" if value is None else f"set, {len(value)} characters"

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named extra, and tell the client its tool list changed."""

        def extra() -> str:
            """A tool that appeared later."""
            return "extra is here"

        server.add_tool(extra)
        await ctx.session.send_tool_list_changed()
        return "added extra"

    @server.tool()
    async def stats(wait_for: str = "", at_least: int = 0, wait_s: float = 5.0) -> dict[str, Any]:
        """This process's counts; first waits (up to wait_s seconds) until the count wait_for reaches at_least."""
        with anyio.move_on_after(wait_s):
            while journal.counts.get(wait_for, 0) < at_least:
                await journal.changed.wait()
        return {"pid": os.getpid(), **journal.counts}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="agentmesh's demo MCP server")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port (default: stdio)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--journal", type=Path, help="append what the server sees to this file (JSON lines)")
    parser.add_argument("--test-tools", action="store_true", help="add the fault tools the tests use")
    args = parser.parse_args(argv)
    journal = Journal(args.journal)
    journal.record("started", transport="http" if args.http else "stdio")
    server = build_server(journal, args.test_tools)
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.http, session_idle_timeout=None)


if __name__ == "__main__":
    main()
