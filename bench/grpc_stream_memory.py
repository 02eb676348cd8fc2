"""The floor under the soak's memory per open stream: what one idle grpc.aio server-stream costs by itself.

A client process opens ``--streams`` Synthesize streams to a bare grpc.aio server in another process (no
interceptors, no application state: the handler sends one message and waits); each side reports its resident
memory growth per open stream. A run through agentmesh holds two such streams open (gateway to orchestrator,
orchestrator to synthesizer), so twice the sum is what gRPC alone costs per open run.

    .venv/bin/python -m bench.grpc_stream_memory [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from agentmesh.rpc.options import server_options
from agentmesh.v1 import synthesizer_pb2, synthesizer_pb2_grpc


def rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class Holding(synthesizer_pb2_grpc.SynthesizerServicer):
    def __init__(self, streams: int) -> None:
        self.open = 0
        self.streams = streams
        self.all_open = asyncio.Event()
        self.release = asyncio.Event()

    async def Synthesize(self, request: synthesizer_pb2.SynthesizeRequest, context: object) -> object:  # type: ignore[override]
        yield synthesizer_pb2.SynthesizeChunk(text_delta="first")
        self.open += 1
        if self.open == self.streams:
            self.all_open.set()
        await self.release.wait()


async def serve(streams: int) -> None:
    servicer = Holding(streams)
    server = grpc.aio.server(options=server_options())
    synthesizer_pb2_grpc.add_SynthesizerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    before = rss_kb()
    print(port, flush=True)
    await servicer.all_open.wait()
    print(f"server: {(rss_kb() - before) / streams:.1f} KiB per open stream", flush=True)
    servicer.release.set()
    await server.stop(5)


async def measure(streams: int) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.grpc_stream_memory",
        "--serve",
        "--streams",
        str(streams),
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    port = int(await server.stdout.readline())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = synthesizer_pb2_grpc.SynthesizerStub(channel)
        before = rss_kb()
        calls = [stub.Synthesize(synthesizer_pb2.SynthesizeRequest(), timeout=120) for _ in range(streams)]
        for call in calls:
            await call.read()
        print(f"client: {(rss_kb() - before) / streams:.1f} KiB per open stream")
        print((await server.stdout.readline()).decode().strip())
        for call in calls:
            while await call.read() is not grpc.aio.EOF:
                pass
    await server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve(args.streams) if args.serve else measure(args.streams))


if __name__ == "__main__":
    main()
