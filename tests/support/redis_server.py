"""A throwaway redis-server on a free loopback port (no persistence), always stopped.

Without the binary the test is skipped with the reason, except under CI (``CI=true``), where it fails: there
``.ci/run`` installs Debian's redis-server first, so a missing binary is a broken setup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.processes import free_port

START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        why = "redis-server is not installed (apt-get install -y redis-server; .ci/run installs it in CI)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {why}", pytrace=False)
        pytest.skip(why)
    return binary


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """Yields ``redis://127.0.0.1:<port>/0`` once the server answers PING."""
    port = free_port()
    log_path = workdir / "redis.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_ping(port, process, log_path)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")
    finally:
        client.close()
