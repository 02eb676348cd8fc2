"""HTTP/1.1 at the socket: request framing, slow clients, the connection bound, and what the server says about itself.

Raw asyncio connections, not an HTTP client: these are the bytes a hostile client sends. Timeouts are set small and
the waits generous, so a loaded machine makes these tests slower, not flaky.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from urllib.parse import urlsplit

import httpx

from tests.gateway.conftest import Gateway, GatewayFactory, mint_token

WAIT_S = 8.0  # far longer than any timeout configured below


@asynccontextmanager
async def raw_connection(gateway: Gateway) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = urlsplit(gateway.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection; fails if it keeps it open past WAIT_S."""
    received = b""
    try:
        async with asyncio.timeout(WAIT_S):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open; it sent {received!r}") from None
    return received


def statuses(raw: bytes) -> list[int]:
    return [int(line.split()[1]) for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


def json_body(raw: bytes) -> dict[str, object]:
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert isinstance(body, dict)
    return body


async def test_transfer_encoding_with_content_length_is_refused_and_the_connection_closed(gateway: Gateway) -> None:
    smuggled = b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"GET /health HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    async with raw_connection(gateway) as (reader, writer):
        writer.write(request)
        await writer.drain()
        answer = await read_until_closed(reader)
    assert statuses(answer) == [400], answer  # the request hidden in the body was never served
    assert b"connection: close" in answer.lower()
    error = json_body(answer)["error"]
    assert isinstance(error, dict) and error["code"] == "ambiguous_framing"


async def test_headers_that_never_finish_are_cut_off(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(http_header_timeout=0.5)
    async with raw_connection(gateway) as (reader, writer):
        started = time.monotonic()
        writer.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")  # no blank line: the headers never end
        await writer.drain()
        assert await read_until_closed(reader) == b""
    assert 0.4 < time.monotonic() - started < WAIT_S


async def test_an_idle_connection_that_never_sends_a_request_is_closed(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(http_header_timeout=0.5, http_keepalive_timeout=60)
    async with raw_connection(gateway) as (reader, _):
        assert await read_until_closed(reader) == b""


async def test_a_body_that_trickles_gets_408_and_the_connection_closed(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(http_body_timeout=0.5)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {mint_token()}\r\nContent-Length: 100\r\n\r\n"
    )
    async with raw_connection(gateway) as (reader, writer):
        started = time.monotonic()
        writer.write(head.encode() + b'{"mod')
        await writer.drain()
        answer = await read_until_closed(reader)
    assert 0.4 < time.monotonic() - started < WAIT_S
    assert statuses(answer) == [408], answer
    error = json_body(answer)["error"]
    assert isinstance(error, dict) and error["code"] == "request_timeout"


async def test_a_trickling_body_is_cut_off_even_where_the_route_never_reads_it(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(http_body_timeout=0.5, http_keepalive_timeout=60)
    async with raw_connection(gateway) as (reader, writer):
        writer.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\n\r\n")
        trickle = asyncio.create_task(trickle_bytes(writer))
        try:
            answer = await read_until_closed(reader)
        finally:
            trickle.cancel()
    assert statuses(answer) == [200], answer


async def trickle_bytes(writer: asyncio.StreamWriter) -> None:
    """One byte every 0.2 s (each one also resets an idle timer), until the server hangs up."""
    try:
        for _ in range(99):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)
    except ConnectionError:
        pass


async def test_connections_beyond_max_connections_get_503(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(max_connections=2)
    async with AsyncExitStack() as idle:
        for _ in range(2):
            await idle.enter_async_context(raw_connection(gateway))
        await asyncio.sleep(0.2)  # the server has accepted both
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            refused = await client.get("/health")
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "service_unavailable_error"
    assert refused.headers["retry-after"].isdigit()
    await asyncio.sleep(0.3)  # the server has seen both close
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/health")).status_code == 200


async def test_the_server_does_not_name_itself(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/health")
    assert "server" not in response.headers
