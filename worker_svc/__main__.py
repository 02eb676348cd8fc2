"""``python -m worker_svc``: serve the worker until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, run_service
from agentmesh.settings import load_settings
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings


def main() -> None:
    settings = load_settings(WorkerSettings)

    async def start(provider: LLMProvider) -> GrpcServer:
        return await start_worker(settings, provider)

    run_service("worker", settings, start)


if __name__ == "__main__":
    main()
