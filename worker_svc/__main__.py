"""``python -m worker_svc``: serve the worker until SIGTERM/SIGINT."""

from __future__ import annotations

from agentmesh.rpc.server import run_service
from worker_svc.server import start_worker
from worker_svc.settings import WorkerSettings


def main() -> None:
    run_service(WorkerSettings, start_worker)


if __name__ == "__main__":
    main()
