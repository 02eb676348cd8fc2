"""``python -m orchestrator_svc``: serve the orchestrator until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, run_service
from agentmesh.settings import load_settings
from orchestrator_svc.server import start_orchestrator
from orchestrator_svc.settings import OrchestratorSettings


def main() -> None:
    settings = load_settings(OrchestratorSettings)

    async def start(provider: LLMProvider) -> GrpcServer:
        return await start_orchestrator(settings, provider)

    run_service("orchestrator", settings, start)


if __name__ == "__main__":
    main()
