"""The pure middle stays pure: planner, task and prompt import neither grpc nor fastapi (docs/code-style.md)."""

from __future__ import annotations

import subprocess
import sys

PURE_MODULES = (
    "orchestrator_svc.planner",
    "worker_svc.task",
    "synthesizer_svc.prompt",
    "gateway.openai.translate",
    "gateway.openai.responses.translate",
)


def test_pure_modules_import_no_grpc_and_no_fastapi() -> None:
    # A fresh interpreter: this test process has long imported grpc for other tests.
    code = (
        f"import sys; import {', '.join(PURE_MODULES)}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'fastapi', 'starlette'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
