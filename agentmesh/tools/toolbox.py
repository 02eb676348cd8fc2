"""The worker's tools: one MCP session per configured server, each specialist's allow-list, calls that never raise.

A call's result is data for the model: capped at MAX_TOOL_RESULT_CHARS and never logged (its size is). Secrets
(``env`` and ``headers`` values) are read from the worker's environment by name at start-up and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from opentelemetry.trace import TracerProvider

from agentmesh.teams.spec import AgentSpec, TeamError
from agentmesh.teams.tools_spec import McpServerSpec
from agentmesh.tools import observe
from agentmesh.tools.connection import ServerConnection, Unavailable
from agentmesh.tools.settings import ToolSettings
from agentmesh.tools.types import SEPARATOR, Outcome, ToolDefinition, ToolOutcome, cap, model_name

logger = logging.getLogger(__name__)

# How long after its own read timeout a call is abandoned, should the SDK not return (it sends the cancel first).
ABANDON_MARGIN_S = 2.0


class Toolbox:
    """Open it once per worker process (``Toolbox.open``), close it at shutdown; ``Toolbox()`` has no servers."""

    def __init__(self, settings: ToolSettings | None = None, tracer_provider: TracerProvider | None = None) -> None:
        self._settings = settings or ToolSettings()
        self._tracer = observe.tracer(tracer_provider)
        self._connections: dict[McpServerSpec, ServerConnection] = {}
        self.listeners: list[Callable[[str, str], None]] = []

    @classmethod
    async def open(
        cls, specs: Iterable[AgentSpec], settings: ToolSettings, tracer_provider: TracerProvider | None = None
    ) -> Toolbox:
        """Starts a session with every server of ``specs`` and waits for each one's first attempt.

        A server that cannot be reached yet does not stop start-up: it is retried with backoff and named by
        ``readiness()``. A server name two specialists configure differently, or an environment variable a
        server needs that is unset, stops it (``TeamError``).
        """
        toolbox = cls(settings, tracer_provider)
        # The SDK logs whole messages (arguments, results) at DEBUG: a result is never logged in full, even there.
        sdk = logging.getLogger("mcp")
        sdk.setLevel(max(sdk.getEffectiveLevel(), logging.INFO))
        servers = _servers(list(specs))
        values = {name: _value(spec, source, name) for spec, source in servers.items() for name in _names(spec)}
        for spec in servers:
            connection = ServerConnection(spec, settings, values, toolbox._changed)
            toolbox._connections[spec] = connection
            observe.server_up(spec.name, False)
            connection.start()
        try:
            await asyncio.gather(*(c.first_attempt() for c in toolbox._connections.values()))
        except BaseException:
            await toolbox.aclose()
            raise
        return toolbox

    def definitions(self, spec: AgentSpec) -> list[ToolDefinition]:
        """The spec's allow-listed tools its servers offer (the list last received, while one reconnects).

        Two tools whose model names coincide (``a.b`` and ``a_b`` both become ``server__a_b``) would be refused by
        the model's API: the first listed is offered, and the call resolves to it.
        """
        found: dict[str, ToolDefinition] = {}
        for server in spec.mcp_servers:
            connection = self._connections.get(server)
            for tool in connection.tools.values() if connection else ():
                if allowed(spec, server.name, tool.name):
                    definition = ToolDefinition(server.name, tool.name, tool.description or "", tool.input_schema)
                    found.setdefault(definition.model_name, definition)
        return list(found.values())

    async def call(
        self, spec: AgentSpec, model_name: str, arguments: Mapping[str, Any], timeout_s: float, call_id: str = ""
    ) -> ToolOutcome:
        """Runs one tool call; a failure is an outcome (``is_error``), never an exception.

        A cancelled caller's ``CancelledError`` propagates once the SDK has sent ``notifications/cancelled``.
        """
        server, tool = self._resolve(spec, model_name)
        label = metric_tool(spec, server.name, tool) if server else "*"
        with observe.span(self._tracer, server.name if server else "", tool or model_name, call_id) as record:
            started = time.perf_counter()
            outcome: Outcome
            if server is None or tool is None or not allowed(spec, server.name, tool):
                outcome, text, size = "refused", f"{model_name!r} is not a tool this specialist may use", 0
            else:
                outcome, text, size = await self._run(server, tool, arguments, timeout_s)
            duration = time.perf_counter() - started
            result = ToolOutcome(
                server=server.name if server else "",
                tool=tool or model_name,
                text=cap(text, self._settings.max_tool_result_chars),
                is_error=outcome != "ok",
                outcome=outcome,
                duration_s=duration,
                result_chars=size,
            )
            record(result)
        observe.call_done(result.server or "-", label, outcome, duration)
        return result

    def readiness(self) -> Mapping[str, str]:
        """Server name -> "" when its session works, else why not (e.g. "reconnecting in 2s: ...")."""
        return {spec.name: connection.reason for spec, connection in self._connections.items()}

    def sessions(self) -> Mapping[str, int]:
        """Server name -> sessions opened so far (1 unless it was reconnected)."""
        return {spec.name: connection.sessions for spec, connection in self._connections.items()}

    async def aclose(self) -> None:
        """Ends every session; stdio servers (children of this process) stop."""
        await asyncio.gather(*(connection.aclose() for connection in self._connections.values()))
        self._connections.clear()

    def _resolve(self, spec: AgentSpec, name: str) -> tuple[McpServerSpec | None, str | None]:
        """The server and the MCP tool name the model's name stands for (None: not one of the spec's)."""
        for server in sorted(spec.mcp_servers, key=lambda s: -len(s.name)):
            if not name.startswith(server.name + SEPARATOR):
                continue
            connection = self._connections.get(server)
            offered = connection.tools if connection else {}
            for tool in offered:
                if model_name(server.name, tool) == name:
                    return server, tool
            return server, name.removeprefix(server.name + SEPARATOR)
        return None, None

    async def _run(
        self, server: McpServerSpec, tool: str, arguments: Mapping[str, Any], timeout_s: float
    ) -> tuple[Outcome, str, int]:
        connection = self._connections.get(server)
        if connection is None:
            return "unavailable", f"MCP server {server.name!r} is not open in this worker", 0
        try:
            async with asyncio.timeout(timeout_s + ABANDON_MARGIN_S):
                result = await connection.call(tool, arguments, timeout_s)
        except Unavailable as exc:
            return "unavailable", f"MCP server {server.name!r} is unavailable: {exc}", 0
        except TimeoutError:
            return "timeout", f"tool {tool!r} did not answer within {timeout_s:g}s (cancelled)", 0
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                return "timeout", f"tool {tool!r} did not answer within {timeout_s:g}s (cancelled)", 0
            return "error", f"tool {tool!r} failed: {exc.error.message}", 0
        except Exception as exc:  # e.g. a result that is not valid MCP: the tool failed, the subtask goes on
            logger.warning(
                "MCP tool call failed", extra={"server": server.name, "tool": tool, "error": type(exc).__name__}
            )
            return "error", f"tool {tool!r} failed: {type(exc).__name__}", 0
        text = result_text(result)
        return ("error" if result.is_error else "ok"), text, len(text)

    def _changed(self, spec: McpServerSpec, reason: str) -> None:
        observe.server_up(spec.name, not reason)
        for listener in self.listeners:
            listener(spec.name, reason)


def allowed(spec: AgentSpec, server: str, tool: str) -> bool:
    return f"{server}.{tool}" in spec.tools or f"{server}.*" in spec.tools


def metric_tool(spec: AgentSpec, server: str, tool: str | None) -> str:
    """The tool label: its name when the allow-list names it, else "*" (a server.* list adds no series)."""
    return tool if tool is not None and f"{server}.{tool}" in spec.tools else "*"


def result_text(result: types.CallToolResult) -> str:
    """The result's content as text: text blocks joined, others described; structured content when no text."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{block.type} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def _servers(specs: list[AgentSpec]) -> dict[McpServerSpec, AgentSpec]:
    """Each distinct server of ``specs``, with the first spec configuring it; one name, one configuration."""
    servers: dict[McpServerSpec, AgentSpec] = {}
    by_name: dict[str, AgentSpec] = {}
    for spec in specs:
        for server in spec.mcp_servers:
            first = by_name.setdefault(server.name, spec)
            if server not in servers and any(known.name == server.name for known in servers):
                raise TeamError(
                    f"{spec.source}: field 'mcp_servers': server {server.name!r} is configured differently in "
                    f"{first.source}; a worker holds one session per server name, so give them one configuration "
                    "or different names"
                )
            servers.setdefault(server, spec)
    return servers


def _names(server: McpServerSpec) -> list[str]:
    return [*server.env, *(name for _header, name in server.headers)]


def _value(server: McpServerSpec, spec: AgentSpec, name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise TeamError(
            f"{spec.source}: field 'mcp_servers': server {server.name!r} needs the environment variable {name}, "
            "which this worker does not have"
        )
    return value
