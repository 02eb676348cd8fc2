"""One MCP server's session for the whole worker process: opened once, reused by every call, reconnected.

A task owns the session (the SDK's ``Client`` must be entered and left in one task): it connects, lists the tools,
then waits; a ``notifications/tools/list_changed`` makes it list them again, and so does MCP_CHECK_INTERVAL of
idleness (which notices a server that stopped answering). The end of the transport's stream (a stdio server that
exited) or a call that finds the connection closed wakes it at once. While it reconnects (a stdio server is
started again) with exponential backoff, calls fail fast as unavailable and ``reason`` says why, which the
worker's health reports.

The session speaks the initialize handshake (``mode="legacy"``, the 2025-11-25 protocol every released server
speaks); on it the server pushes ``list_changed`` unprompted, and the SDK's v2 dispatcher sends
``notifications/cancelled`` for a call that times out or whose caller is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPError

from agentmesh.teams.tools_spec import McpServerSpec
from agentmesh.tools.settings import ToolSettings
from agentmesh.tools.transport import open_transport

logger = logging.getLogger(__name__)

CLIENT_INFO = types.Implementation(name="agentmesh", version="0.1.0")
# Connection and stream errors a call can meet when the server is gone (the SDK maps most to CONNECTION_CLOSED).
GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, httpx2.TransportError, OSError)


class Unavailable(Exception):
    """The server has no working session now; the message says why."""


class ServerConnection:
    def __init__(
        self,
        spec: McpServerSpec,
        settings: ToolSettings,
        values: Mapping[str, str],
        on_change: Callable[[McpServerSpec, str], None] = lambda _spec, _reason: None,
    ) -> None:
        """``values`` are the environment values of the spec's ``env`` and ``headers`` names."""
        self.spec = spec
        self.tools: dict[str, types.Tool] = {}
        self.reason = "connecting"
        self.sessions = 0
        self._settings = settings
        self._values = values
        self._on_change = on_change
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._refresh = False
        self._broken = False
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp-server-{self.spec.name}")

    async def first_attempt(self) -> None:
        """Returns once the first connection attempt has succeeded or failed."""
        await self._attempted.wait()

    async def call(self, tool: str, arguments: Mapping[str, Any], timeout_s: float) -> types.CallToolResult:
        """The server's result; raises ``Unavailable``, or ``MCPError`` (REQUEST_TIMEOUT when ``timeout_s`` passed)."""
        client = self._client
        if client is None or self.reason:
            raise Unavailable(self.reason or "not connected")
        try:
            return await client.call_tool(tool, dict(arguments), read_timeout_seconds=timeout_s)
        except MCPError as exc:
            if exc.code != types.CONNECTION_CLOSED:
                raise
            self._lost(client)
            raise Unavailable(f"connection closed: {exc.error.message}") from None
        except GONE as exc:
            self._lost(client)
            raise Unavailable(f"connection lost: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        """Ends the session; a stdio server gets the SDK's shutdown (stdin closed, then terminated, then killed)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather, not a bare await: the task's CancelledError is absorbed, a cancellation of ours is not.
            await asyncio.gather(task, return_exceptions=True)

    def _lost(self, client: Client) -> None:
        if client is self._client and not self._broken:
            self._broken = True
            self._set_reason("connection lost; reconnecting")
            self._wake.set()

    def _set_reason(self, reason: str) -> None:
        if reason != self.reason:
            self.reason = reason
            self._on_change(self.spec, reason)

    async def _run(self) -> None:
        initial, longest = self._settings.mcp_reconnect_backoff_initial, self._settings.mcp_reconnect_backoff_max
        delay = initial
        while True:
            started = time.monotonic()
            try:
                await self._session()
                why = "the connection was lost"
            except Exception as exc:  # any failure of a server is a reason to reconnect
                why = describe(exc)
            self._client = None
            if self.sessions and time.monotonic() - started >= longest:
                delay = initial  # a session that lasted starts the backoff afresh; one crashing at once does not
            self._set_reason(f"reconnecting in {delay:g}s: {why}")
            logger.warning(
                "MCP server unavailable",
                extra={"server": self.spec.name, "transport": self.spec.transport, "reason": why, "retry_s": delay},
            )
            self._attempted.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def _session(self) -> None:
        transport = open_transport(self.spec, self._values, self._ended)
        client = Client(transport, mode="legacy", message_handler=self._on_message, cache=None, client_info=CLIENT_INFO)
        # asyncio's timeout, not anyio's: the Client's task group, entered inside it, outlives it.
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self._settings.mcp_connect_timeout):
                await stack.enter_async_context(client)
                await self._list_tools(client)
            self.sessions += 1
            self._broken = False
            self._client = client
            self._set_reason("")
            logger.info("MCP server ready", extra={"server": self.spec.name, "tools": len(self.tools)})
            self._attempted.set()
            await self._serve(client)

    def _ended(self) -> None:
        """The transport's read stream ended: the server exited or the connection broke."""
        if self._client is not None:
            self._lost(self._client)

    async def _serve(self, client: Client) -> None:
        """Until the session is lost: list the tools again when told, and every MCP_CHECK_INTERVAL when idle."""
        interval = self._settings.mcp_check_interval or None
        while not self._broken:
            woken = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
                    woken = True
            self._wake.clear()
            if self._broken:
                return
            if woken and not self._refresh:
                continue
            self._refresh = False
            before = self.tools
            with anyio.fail_after(self._settings.mcp_connect_timeout):
                await self._list_tools(client)
            if self.tools != before:
                self._on_change(self.spec, self.reason)

    async def _list_tools(self, client: Client) -> None:
        tools: dict[str, types.Tool] = {}
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.update((tool.name, tool) for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = tools

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._refresh = True
            self._wake.set()
        elif isinstance(message, Exception):
            logger.warning("MCP transport error", extra={"server": self.spec.name, "error": describe(message)})


def describe(exc: BaseException) -> str:
    """A short reason for logs and health; an exception group is described by its first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.error.message}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
