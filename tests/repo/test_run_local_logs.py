"""`make run` writes each service's log to .run/<service>.log, readable by its owner only."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.processes import REPO_ROOT


@pytest.fixture(scope="module")
def run_local() -> ModuleType:
    scripts = str(REPO_ROOT / "scripts")
    sys.path.insert(0, scripts)  # run_local imports its neighbour generate_jwt as the script itself does
    try:
        spec = importlib.util.spec_from_file_location("run_local_under_test", REPO_ROOT / "scripts" / "run_local.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(scripts)


def test_log_files_are_private_new_or_reused(run_local: ModuleType, tmp_path: Path) -> None:
    fresh, reused = tmp_path / "gateway.log", tmp_path / "worker.log"
    reused.write_text("an earlier run\n")
    reused.chmod(0o644)
    for path in (fresh, reused):
        with run_local.open_private_log(path) as log:
            log.write("line\n")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.read_text() == "line\n"
