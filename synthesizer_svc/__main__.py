"""``python -m synthesizer_svc``: serve the synthesizer until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.llm.provider import LLMProvider
from agentmesh.rpc.server import GrpcServer, run_service
from agentmesh.settings import load_settings
from synthesizer_svc.server import start_synthesizer
from synthesizer_svc.settings import SynthesizerSettings


def main() -> None:
    settings = load_settings(SynthesizerSettings)

    async def start(provider: LLMProvider) -> GrpcServer:
        return await start_synthesizer(settings, provider)

    run_service("synthesizer", settings, start)


if __name__ == "__main__":
    main()
