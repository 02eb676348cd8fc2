"""``python -m synthesizer_svc``: serve the synthesizer until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.rpc.server import run_service
from synthesizer_svc.server import start_synthesizer
from synthesizer_svc.settings import SynthesizerSettings


def main() -> None:
    run_service(SynthesizerSettings, start_synthesizer)


if __name__ == "__main__":
    main()
