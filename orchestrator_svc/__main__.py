"""``python -m orchestrator_svc``: serve the orchestrator until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.rpc.server import run_service
from orchestrator_svc.server import start_orchestrator
from orchestrator_svc.settings import OrchestratorSettings


def main() -> None:
    run_service(OrchestratorSettings, start_orchestrator)


if __name__ == "__main__":
    main()
