"""Server reflection that keeps the contract's comments, so ``grpcurl describe`` documents each field.

grpcio-reflection serialises descriptors from the runtime pool, which drops source info (comments);
we swap in our own files from the descriptor set that ``make proto`` writes with ``--include_source_info``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

DESCRIPTOR_SET = "agentmesh.binpb"


@cache
def _documented_files() -> dict[str, bytes]:
    contract = descriptor_pb2.FileDescriptorSet()
    contract.ParseFromString(resources.files("agentmesh.v1").joinpath(DESCRIPTOR_SET).read_bytes())
    return {proto.name: proto.SerializeToString() for proto in contract.file}


def _with_comments(response: reflection_pb2.ServerReflectionResponse) -> reflection_pb2.ServerReflectionResponse:
    if not response.HasField("file_descriptor_response"):
        return response
    documented = _documented_files()
    files = response.file_descriptor_response.file_descriptor_proto
    for index, serialized in enumerate(files):
        name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
        if name in documented:
            files[index] = documented[name]
    return response


class DocumentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    def _file_by_filename(self, request: Any, filename: str) -> reflection_pb2.ServerReflectionResponse:
        return _with_comments(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, symbol: str) -> reflection_pb2.ServerReflectionResponse:
        return _with_comments(super()._file_containing_symbol(request, symbol))


def enable_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        DocumentedReflectionServicer([*service_names, reflection.SERVICE_NAME]), server
    )
