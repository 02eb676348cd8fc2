"""The SDK's transports, built from a server's spec, with a read stream that says when the server has gone.

The SDK's session notices end of stream (a stdio server that exited, an HTTP stream torn down) only by failing
the calls then waiting; the connection's owner needs to know at once, to reconnect and to report it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._stream_protocols import ReadStream
from mcp.shared.message import SessionMessage

from agentmesh.teams.tools_spec import McpServerSpec

# A command of "python" is the worker's own interpreter, so a server installed beside agentmesh is found.
OWN_PYTHON = ("python", "python3")
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's own defaults: a server may hold a stream open


class WatchedReadStream:
    """Passes every item through; calls ``on_end`` once when the stream ends or breaks."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> WatchedReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> WatchedReadStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


@asynccontextmanager
async def open_transport(
    spec: McpServerSpec, values: Mapping[str, str], on_end: Callable[[], None]
) -> AsyncIterator[TransportStreams]:
    """``values`` hold the environment values of the spec's ``env`` and ``headers`` names."""
    async with AsyncExitStack() as stack:
        if spec.command is not None:
            command = sys.executable if spec.command in OWN_PYTHON else spec.command
            env = {name: values[name] for name in spec.env}
            params = StdioServerParameters(command=command, args=list(spec.args), env=env)
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            assert spec.url is not None  # the loader gives a server a command or a url
            headers = {header: values[name] for header, name in spec.headers}
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT))
            read, write = await stack.enter_async_context(streamable_http_client(spec.url, http_client=http))
        yield WatchedReadStream(read, on_end), write
