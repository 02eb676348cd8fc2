"""The local mesh in one command: starts worker, synthesizer, orchestrator and gateway, waits until ready.

Each child's output is streamed here, prefixed with its name, and written to `.run/<name>.log`.
One Ctrl-C (SIGINT) or SIGTERM stops them all: SIGTERM to each, SIGKILL for those still running after
the grace period (a second Ctrl-C kills at once). Where things listen comes from the environment / `.env`:
API_HOST, API_PORT, the three *_TARGET variables (each gRPC service listens on its target's host:port) and
ORCHESTRATOR_METRICS_PORT, WORKER_METRICS_PORT, SYNTHESIZER_METRICS_PORT (each becomes that child's METRICS_PORT).

WORKER_REPLICAS=N and SYNTHESIZER_REPLICAS=N start N processes of that service: replica k (from 1) listens on
the target's port + 100·(k-1) and serves metrics on its metrics port + 100·(k-1), logs to `.run/<name>-<k>.log`,
and the orchestrator round-robins over all of them through one multi-address target. A replica that exits is
started again (as a container's restart policy would); any other child's exit stops the mesh.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from generate_jwt import TokenConfigError, mint_from_env
from pydantic import Field

from agentmesh.settings import CommonSettings, load_settings
from orchestrator_svc.settings import OrchestratorSettings
from synthesizer_svc.settings import SynthesizerSettings
from worker_svc.settings import WorkerSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = REPO_ROOT / ".run"
TOKEN_TTL_S = 12 * 3600
KILL_MARGIN_S = 5.0  # on top of SHUTDOWN_GRACE_PERIOD, so children get to finish their own ordered stop
REPLICA_PORT_STEP = 100  # replica k's ports: the service's own + 100·(k-1); clear of the other services' ports
RESTART_AFTER_S = 1.0  # a replica that keeps dying is restarted at most this often
TAIL_LINES = 25
_COLORS = ("\033[36m", "\033[33m", "\033[35m", "\033[32m")


class LocalMeshSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    orchestrator_target: str = "127.0.0.1:50051"
    worker_target: str = "127.0.0.1:50052"
    synthesizer_target: str = "127.0.0.1:50053"
    orchestrator_metrics_port: int = Field(default=9101, ge=1, le=65535)
    worker_metrics_port: int = Field(default=9102, ge=1, le=65535)
    synthesizer_metrics_port: int = Field(default=9103, ge=1, le=65535)
    worker_replicas: int = Field(default=1, ge=1, le=32)
    synthesizer_replicas: int = Field(default=1, ge=1, le=32)
    service_model_name: str = "agentmesh"


@dataclass(frozen=True)
class Port:
    host: str
    port: int
    meaning: str  # e.g. "worker gRPC (WORKER_TARGET)"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env: dict[str, str]
    ports: tuple[Port, ...]
    replica: bool = False  # one of several processes of its service: restarted when it exits


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[str]
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    pump: threading.Thread | None = None
    started_at: float = field(default_factory=time.monotonic)


class Signals:
    """Set by signal handlers (which must not take locks); polled by the main loop."""

    def __init__(self) -> None:
        self.stop = False
        self.force = False
        self.name = ""

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop:
            self.force = True
        self.stop = True
        self.name = self.name or signal.Signals(signum).name


def open_private_log(path: Path, append: bool = False) -> TextIO:
    """A log file only its owner can read (0600, an existing one too): logs name users and request details."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8")


def split_host_port(target: str, variable: str) -> tuple[str, int]:
    """'127.0.0.1:50052' or '[::1]:50052'; resolver schemes and address lists cannot be listened on."""
    host, _, port = target.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not host or not port.isdigit() or any(c in target for c in "/,") or (":" in host and not bracketed):
        raise SystemExit(f"{variable}={target!r}: the local launcher needs a plain host:port target to listen on")
    return host, int(port)


def build_specs(settings: LocalMeshSettings) -> list[ServiceSpec]:
    """Dependencies first, gateway last; each child gets its listen address, metrics port and targets."""
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    if "log_format" not in settings.model_fields_set:
        base["LOG_FORMAT"] = "standard"  # readable in a terminal; JSON stays the services' default elsewhere
    s = settings
    workers, worker_target = _replicas("worker", s.worker_target, s.worker_metrics_port, s.worker_replicas, base)
    synthesizers, synthesizer_target = _replicas(
        "synthesizer", s.synthesizer_target, s.synthesizer_metrics_port, s.synthesizer_replicas, base
    )
    downstream = {"WORKER_TARGET": worker_target, "SYNTHESIZER_TARGET": synthesizer_target}
    if s.grpc_tls.enabled and not s.grpc_tls_server_name and len(workers) + len(synthesizers) > 2:
        # An address list names no host to check the servers' certificates against: use the listen host.
        downstream["GRPC_TLS_SERVER_NAME"] = split_host_port(s.worker_target, "WORKER_TARGET")[0].strip("[]")
    gateway_env = dict(base, API_HOST=s.api_host, API_PORT=str(s.api_port), ORCHESTRATOR_TARGET=s.orchestrator_target)
    api = Port(s.api_host, s.api_port, "gateway HTTP (API_HOST, API_PORT)")
    orchestrator_env = dict(base, **downstream)
    return [
        *workers,
        *synthesizers,
        _grpc_spec(
            "orchestrator", "orchestrator", s.orchestrator_target, s.orchestrator_metrics_port, orchestrator_env
        ),
        ServiceSpec("gateway", "gateway", gateway_env, (api,)),
    ]


def _replicas(
    service: str, target: str, metrics_port: int, count: int, base: dict[str, str]
) -> tuple[list[ServiceSpec], str]:
    """The processes of one service, and the target that reaches them all (round-robin over an address list)."""
    if count == 1:
        return [_grpc_spec(service, service, target, metrics_port, base)], target
    host, port = split_host_port(target, f"{service.upper()}_TARGET")
    addresses = [_join(host, port + REPLICA_PORT_STEP * k) for k in range(count)]
    specs = [
        _grpc_spec(f"{service}-{k + 1}", service, address, metrics_port + REPLICA_PORT_STEP * k, base, replica=True)
        for k, address in enumerate(addresses)
    ]
    return specs, f"{_address_scheme(host, service)}:{','.join(addresses)}"


def _join(host: str, port: int) -> str:
    return f"{host}:{port}"


def _address_scheme(host: str, service: str) -> str:
    """gRPC's address-list targets take IP literals only: ``ipv4:a:p1,a:p2`` or ``ipv6:[a]:p1,[a]:p2``."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise SystemExit(
            f"{service.upper()}_TARGET={host!r}...: {service.upper()}_REPLICAS needs an IP address as the host "
            "(e.g. 127.0.0.1), not a name"
        ) from None
    return "ipv4" if address.version == 4 else "ipv6"


def _grpc_spec(
    name: str, service: str, target: str, metrics_port: int, base: dict[str, str], replica: bool = False
) -> ServiceSpec:
    variable = f"{service.upper()}_TARGET"
    host, port = split_host_port(target, variable)
    env = dict(base, GRPC_LISTEN=target, METRICS_PORT=str(metrics_port))
    # Metrics bind where the service listens (the service does the same): loopback stays loopback.
    ports = (
        Port(host, port, f"{name} gRPC ({variable})"),
        Port(host, metrics_port, f"{name} metrics ({service.upper()}_METRICS_PORT)"),
    )
    return ServiceSpec(name, f"{service}_svc", env, ports, replica)


def describe_processes(specs: Sequence[ServiceSpec]) -> str:
    """One line per process: where it listens, where its metrics are, where it logs."""
    width = max(len(spec.name) for spec in specs)
    lines = []
    for spec in specs:
        where = "  ".join(
            f"{p.meaning.split(' (')[0].removeprefix(spec.name).strip()} {p.host}:{p.port}" for p in spec.ports
        )
        lines.append(f"  {spec.name:<{width}}  {where}  log .run/{spec.name}.log")
    return "\n".join(lines)


def port_conflicts(specs: Sequence[ServiceSpec]) -> list[str]:
    """One message per port that is configured twice or cannot be bound right now."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for port in (p for spec in specs for p in spec.ports):
        if port.port in seen:
            problems.append(f"port {port.port} is configured for both {seen[port.port]} and {port.meaning}")
            continue
        seen[port.port] = port.meaning
        error = _bind_error(port.host, port.port)
        if error:
            problems.append(
                f"port {port.port} on {port.host} for {port.meaning} is not free ({error}); is another mesh still "
                f"running? See `ss -ltnp 'sport = :{port.port}'`, or move it in .env"
            )
    return problems


def _bind_error(host: str, port: int) -> str | None:
    # gRPC binds with SO_REUSEPORT, so two servers could silently share a port: probe without it.
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc}"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return exc.strerror or str(exc)
    return None


class Mesh:
    def __init__(self, specs: Sequence[ServiceSpec], echo: bool) -> None:
        self.specs = specs
        self.echo = echo
        self.children: list[Child] = []
        self.lock = threading.Lock()
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.width = max(len(spec.name) for spec in specs)

    def start(self) -> None:
        RUN_DIR.mkdir(mode=0o700, exist_ok=True)
        for index, spec in enumerate(self.specs):
            self.children.append(self._launch(spec, index, append=False))

    def _launch(self, spec: ServiceSpec, index: int, append: bool) -> Child:
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            cwd=REPO_ROOT,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            process_group=0,  # the terminal's Ctrl-C reaches only us; we stop the children in order
        )
        child = Child(spec, process)
        pump_args = (child, index, append)
        child.pump = threading.Thread(target=self._pump, args=pump_args, name=f"log-{spec.name}", daemon=True)
        child.pump.start()
        return child

    def restart(self, child: Child) -> None:
        """Starts an exited replica again in its place, appending to its log."""
        if child.pump is not None:
            child.pump.join(timeout=2)
        index = self.children.index(child)
        self.children[index] = self._launch(child.spec, index, append=True)

    def _pump(self, child: Child, index: int, append: bool) -> None:
        assert child.process.stdout is not None
        prefix = f"{child.spec.name:<{self.width}} | "
        if self.color:
            prefix = f"{_COLORS[index % len(_COLORS)]}{prefix}\033[0m"
        with open_private_log(RUN_DIR / f"{child.spec.name}.log", append=append) as log:
            for line in child.process.stdout:
                log.write(line)
                log.flush()
                child.tail.append(line.rstrip("\n"))
                if self.echo:
                    self.say(prefix + line.rstrip("\n"))

    def say(self, text: str, stream: TextIO | None = None) -> None:
        with self.lock:
            print(text, file=stream or sys.stdout, flush=True)

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self, grace_s: float, signals: Signals) -> None:
        """SIGTERM to each (gateway first), then SIGKILL whatever outlives ``grace_s`` or a second signal."""
        running = [c for c in reversed(self.children) if c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(c.process.poll() is None for c in running):
            if signals.force or time.monotonic() > deadline:
                for child in (c for c in running if c.process.poll() is None):
                    self.say(f"{child.spec.name} did not stop in time: SIGKILL", sys.stderr)
                    child.process.kill()
                    child.process.wait()
                break
            time.sleep(0.1)
        for child in self.children:
            if child.pump is not None:
                child.pump.join(timeout=2)
        summary = ", ".join(f"{c.spec.name} ({_describe_exit(c.process.returncode)})" for c in self.children)
        self.say(f"stopped: {summary}")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"terminated by {signal.Signals(-code).name}"
    return f"exit {code}"


def http_base(host: str, port: int) -> str:
    if host in {"0.0.0.0", ""}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def probe_ready(url: str) -> tuple[bool, str]:
    """(ready, what the endpoint said); proxies from the environment are bypassed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read(300).decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


def wait_ready(mesh: Mesh, url: str, timeout_s: float, signals: Signals) -> int | None:
    """None once ready; otherwise the launcher's exit code, after explaining why."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if signals.stop:
            return 130
        exited = mesh.first_exited()
        if exited is not None:
            report_exit(mesh, exited, "during start-up")
            return 1
        ready, last = probe_ready(url)
        if ready:
            return None
        time.sleep(0.5)
    mesh.say(f"not ready after {timeout_s:.0f}s: {url} said {last}; see .run/*.log", sys.stderr)
    return 1


def report_exit(mesh: Mesh, child: Child, when: str) -> None:
    if child.pump is not None:
        child.pump.join(timeout=2)  # let the pump read the dying child's last lines
    lines = "\n".join(f"    {line}" for line in child.tail) or "    (no output)"
    mesh.say(
        f"{child.spec.name} ({child.spec.module}) {_describe_exit(child.process.returncode)} {when}; "
        f"its last log lines (full log: .run/{child.spec.name}.log):\n{lines}",
        sys.stderr,
    )


def describe_providers() -> str:
    """One line per agent (provider, model); loading each service's settings here stops a missing key before
    any child starts."""
    return "\n".join(
        load_settings(cls).describe() for cls in (OrchestratorSettings, WorkerSettings, SynthesizerSettings)
    )


def banner(base: str, token: str, model: str, provider: str) -> str:
    """The example asks the research team (three specialists): the progress shows a plan fanned out over them."""
    team = f"{model}/research"
    body = (
        f'{{"model": "{team}", "stream": true, '
        '"messages": [{"role": "user", "content": "Compare SQLite and PostgreSQL for a small web app"}]}'
    )
    return f"""
agentmesh is ready: {base}\n{provider}

teams: {model} (the default team) and {team} (researcher, analyst, writer); build your own: docs/teams.md
tools: the researcher calls the demo MCP server's tools (a child of the worker); the progress and
{base}/inspect name each call; add your own servers: docs/tools.md

token (sub=local-dev, valid {TOKEN_TTL_S // 3600}h; mint another with `.venv/bin/python scripts/generate_jwt.py`):
{token}

curl:
curl -sN {base}/v1/chat/completions -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{body}'

console client (progress, answer, cost):
.venv/bin/python console_client.py "Compare SQLite and PostgreSQL for a small web app" --url {base} --model {team}

openai SDK:
from openai import OpenAI
client = OpenAI(base_url="{base}/v1", api_key="{token}")
reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello"}}])
print(reply.choices[0].message.content)

logs: .run/<service>.log   stop: Ctrl-C
"""


def run(settings: LocalMeshSettings, ready_timeout_s: float, echo: bool) -> int:
    try:
        token = mint_from_env(expires_in_s=TOKEN_TTL_S)
    except TokenConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    specs = build_specs(settings)
    problems = port_conflicts(specs)
    if problems:
        print("cannot start the mesh:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    provider = describe_providers()
    print(f"starting {len(specs)} processes\n{provider}\n{describe_processes(specs)}", flush=True)
    signals = Signals()
    signals.install()
    mesh = Mesh(specs, echo)
    base = http_base(settings.api_host, settings.api_port)
    try:
        mesh.start()
        failed = wait_ready(mesh, f"{base}/health/ready", ready_timeout_s, signals)
        if failed is not None:
            return failed
        mesh.say(banner(base, token, settings.service_model_name, provider))
        return supervise(mesh, signals)
    finally:
        mesh.stop(settings.shutdown_grace_period + KILL_MARGIN_S, signals)


def supervise(mesh: Mesh, signals: Signals) -> int:
    """Until a stop signal: restarts replicas that exit (the others keep serving meanwhile); any other exit
    stops the mesh."""
    while not signals.stop:
        exited = mesh.first_exited()
        if exited is not None and not exited.spec.replica:
            report_exit(mesh, exited, "unexpectedly")
            return 1
        if exited is not None and time.monotonic() - exited.started_at >= RESTART_AFTER_S:
            report_exit(mesh, exited, "unexpectedly; the other replicas take its calls, and it is started again")
            mesh.restart(exited)
        time.sleep(0.2)
    mesh.say(f"{signals.name}: stopping the mesh")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole mesh locally until Ctrl-C.")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for /health/ready")
    parser.add_argument("--quiet", action="store_true", help="do not echo service logs (still in .run/*.log)")
    args = parser.parse_args(argv)
    os.chdir(REPO_ROOT)  # the children and the settings read `.env` from here
    settings = load_settings(LocalMeshSettings)
    return run(settings, args.ready_timeout, echo=not args.quiet)


if __name__ == "__main__":
    sys.exit(main())
