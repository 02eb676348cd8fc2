"""What one service may pass on of another's failure: our handlers' words, never gRPC's own details."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from agentmesh.rpc.errors import (
    OWN_STATUS,
    InvalidInput,
    downstream_failure,
    is_own_status,
    message_too_large,
)
from agentmesh.rpc.interceptors import ServerInterceptor
from agentmesh.v1 import worker_pb2, worker_pb2_grpc

Context = grpc.aio.ServicerContext[worker_pb2.ExecuteRequest, worker_pb2.ExecuteResponse]


def failed(code: grpc.StatusCode, details: str, *, own: bool) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata(OWN_STATUS) if own else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details)


def test_a_message_over_the_size_limit_becomes_invalid_argument_in_our_words() -> None:
    exc = failed(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (40000000 vs. 33554432)", own=False
    )
    assert message_too_large(exc)
    code, words = downstream_failure(exc)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "larger than max" not in words and "33554432" not in words


def test_our_own_rate_limit_stays_what_it_is() -> None:
    exc = failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "model rate limited: slow down", own=True)
    assert not message_too_large(exc)
    assert downstream_failure(exc) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "model rate limited: slow down")


def test_grpc_s_own_details_are_replaced() -> None:
    exc = failed(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; ipv4:10.1.2.3:50052", own=False)
    code, words = downstream_failure(exc)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "10.1.2.3" not in words


class Refusing(worker_pb2_grpc.WorkerServicer):
    def __init__(self, raw: bool) -> None:
        self.raw = raw

    async def Execute(self, request: worker_pb2.ExecuteRequest, context: Context) -> worker_pb2.ExecuteResponse:
        if self.raw:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "aborted without our interceptor's mapping")
        raise InvalidInput("the subtask has no instruction")


@pytest.fixture
async def worker_target() -> AsyncIterator[tuple[str, Refusing]]:
    servicer = Refusing(raw=False)
    server = grpc.aio.server(interceptors=[ServerInterceptor()])
    worker_pb2_grpc.add_WorkerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(grace=0)


async def test_statuses_our_handlers_end_calls_with_carry_the_mark(worker_target: tuple[str, Refusing]) -> None:
    target, servicer = worker_target
    async with grpc.aio.insecure_channel(target) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as ours:
            await stub.Execute(worker_pb2.ExecuteRequest(), timeout=5)
        servicer.raw = True
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await stub.Execute(worker_pb2.ExecuteRequest(), timeout=5)
    assert is_own_status(ours.value) and ours.value.details() == "the subtask has no instruction"
    assert not is_own_status(raw.value)
