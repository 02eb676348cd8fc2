"""Starts the real services as child processes on free loopback ports, and always stops them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    metrics_port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def calls_served(metrics_port: int, method: str) -> float:
    """Calls of ``method`` a service process answered OK, from its own metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "agentmesh_grpc_server_handled":
            return sum(
                sample.value
                for sample in family.samples
                if sample.name.endswith("_total")
                and sample.labels.get("method") == method
                and sample.labels.get("code") == "OK"
            )
    return 0.0


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "LLM_", "OTEL_")) and not k.endswith("_PROVIDER")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"})
    # The gateway's drain delay gives balancers time to notice; tests that check it set their own.
    env.setdefault("SHUTDOWN_DRAIN_DELAY", "0")
    env.update(extra)
    return env


def _fail(service: ServiceProcess, why: str) -> AssertionError:
    service.stop(timeout=5)
    tail = "\n".join(service.logs().splitlines()[-30:])
    return AssertionError(f"{service.name} {why}; last log lines:\n{tail}")


def spawn(name: str, module: str, env: Mapping[str, str], workdir: Path, log_name: str = "") -> ServiceProcess:
    """Runs ``python -m module`` in ``workdir`` (so no developer ``.env`` leaks in), logging to a file there."""
    log_path = workdir / f"{log_name or name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=workdir,
            env=_child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ServiceProcess(name=name, process=process, log_path=log_path)


def wait_for_grpc_port(service: ServiceProcess, timeout: float = START_TIMEOUT_S) -> int:
    """Reads the bound port from the service's own "<name> serving" log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in service.log_records():
            if record.get("event") == f"{service.name} serving":
                service.port = int(str(record["port"]))
                return service.port
        if service.process.poll() is not None:
            raise _fail(service, f"exited with code {service.process.returncode} before serving")
        time.sleep(0.05)
    raise _fail(service, f"did not start within {timeout} s")


def wait_for_http_ready(service: ServiceProcess, path: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{service.address}{path}"
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise _fail(service, f"exited with code {service.process.returncode} before ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise _fail(service, f"was not ready at {url} within {timeout} s")


@dataclass
class ProcessMesh:
    gateway: ServiceProcess
    orchestrator: ServiceProcess
    workers: list[ServiceProcess]
    synthesizer: ServiceProcess
    jwt_secret: str

    @property
    def base_url(self) -> str:
        return f"http://{self.gateway.address}"

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.gateway, self.orchestrator, *self.workers, self.synthesizer]


@contextmanager
def process_mesh(
    workdir: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    jwt_secret: str = "e2e-" + "s" * 40,
    worker_envs: Sequence[Mapping[str, str]] = (),
    worker_targets: Callable[[list[ServiceProcess]], str] | None = None,
) -> Iterator[ProcessMesh]:
    """All four services as real processes on loopback; yields once the gateway says ready.

    ``worker_envs[i]`` is worker i's own extra environment; ``worker_targets`` makes the orchestrator's
    WORKER_TARGETS from the started workers."""
    common = {
        "JWT_SECRET_KEY": jwt_secret,
        "HEALTH_POLL_INTERVAL": "0.2",
        # Every test talks from 127.0.0.1: keep the limiter in the path, with budgets no test reaches by accident.
        "RATE_LIMIT_CHAT_COMPLETIONS": "100000/minute",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        **(env or {}),
    }
    grpc_any_port = {"GRPC_LISTEN": "127.0.0.1:0"}
    with ExitStack() as stack:

        def start(name: str, module: str, extra: Mapping[str, str], log_name: str = "") -> ServiceProcess:
            metrics_port = free_port() if name != "gateway" else 0
            metrics = {"METRICS_PORT": str(metrics_port)} if metrics_port else {}
            service = spawn(name, module, {**common, **metrics, **extra}, workdir, log_name)
            service.metrics_port = metrics_port
            stack.callback(service.stop)
            return service

        worker_procs = []
        for index in range(workers):
            own = worker_envs[index] if index < len(worker_envs) else {}
            worker_procs.append(start("worker", "worker_svc", {**grpc_any_port, **own}, log_name=f"worker{index}"))
        synthesizer = start("synthesizer", "synthesizer_svc", grpc_any_port)
        for service in [*worker_procs, synthesizer]:
            wait_for_grpc_port(service)
        worker_target = "ipv4:" + ",".join(w.address for w in worker_procs)
        orchestrator = start(
            "orchestrator",
            "orchestrator_svc",
            {
                **grpc_any_port,
                "WORKER_TARGET": worker_target,
                "SYNTHESIZER_TARGET": synthesizer.address,
                **({"WORKER_TARGETS": worker_targets(worker_procs)} if worker_targets else {}),
            },
        )
        wait_for_grpc_port(orchestrator)
        gateway_port = free_port()
        gateway = start(
            "gateway",
            "gateway",
            {"API_HOST": "127.0.0.1", "API_PORT": str(gateway_port), "ORCHESTRATOR_TARGET": orchestrator.address},
        )
        gateway.port = gateway_port
        wait_for_http_ready(gateway, "/health/ready")
        yield ProcessMesh(gateway, orchestrator, worker_procs, synthesizer, jwt_secret)
