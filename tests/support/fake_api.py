"""What our fake model APIs share: scripting, recording, serving on a loopback port, the HTTP control API.

A fake (``FakeAnthropic``, ``FakeOpenAI``) subclasses ``FakeAPI`` with its wire format: the path it serves, how it
validates a request, its error bodies and its answers. Everything else is here:

- in-process: ``with Fake(api_key="k") as fake`` serves on 127.0.0.1:<free port> in a thread;
  ``fake.script(Behaviour(...))``, ``fake.requests``, ``fake.wait_until(predicate)``;
- as a process: ``python -m tests.support.<fake> --port 0`` prints ``PORT=<n>`` when ready and stops on SIGTERM,
  scripted over HTTP: ``POST /_control/script`` ``{"behaviours": [{...behaviour..., "times": 2}]}``,
  ``POST /_control/default`` ``{...behaviour...}``, ``POST /_control/reset``, ``GET /_control/requests``,
  ``POST /_control/rate_limit`` ``{"capacity": 10, "refill_per_s": 10, "headers": true}`` (a token bucket of
  requests, ``tests.support.fake_rate_limit``; ``{}`` removes it), ``GET /_control/state`` and
  ``POST /_control/wait`` ``{"in_flight": 0, "within_s": 5}`` (answers once the state
  has those values, 408 after ``within_s``). ``spawn_fake(module)`` runs the process and wraps that API.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import uvicorn

from tests.support.fake_cache import CacheUse, PromptCache
from tests.support.fake_rate_limit import RateLimit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSWER_PREFIX = "fake answer: "
TOOLS_ANSWER_PREFIX = "fake answer from tools: "


@dataclass
class Behaviour:
    """What the server does with one valid request; the defaults give the deterministic answer.

    ``status`` other than 200 answers with the API's error body (``error_type`` defaults from the status) and a
    ``retry-after`` (``retry-after-ms``) header when ``retry_after`` (``retry_after_ms``) is set. ``latency_s``
    delays the response start; ``delta_delay_s`` delays every streamed delta after the first, and the end of the
    answer; ``stream_hold_s`` spreads those delays so that a streamed answer lasts that long in all. With
    ``stream_error_type`` a streamed answer sends an error event after ``stream_error_after`` deltas and ends.
    ``refuse_tool`` answers with text even when a tool is forced. ``stream_drop_after`` cuts the
    connection after that many streamed deltas (uvicorn logs the abort as an application error). Cache token
    counts of None are sent as null. ``echo`` answers with the whole last user message (plain text only).
    ``refuse_tools`` / ``refuse_response_format`` make a server that rejects requests using tools / a JSON-schema
    response format with a 400, as some OpenAI-compatible servers do, and ``no_stream_usage`` one that ignores
    ``stream_options.include_usage`` (OpenAI fake only). A scripted behaviour
    with ``match_text`` (a regular expression searched in the last user message) or ``match_model`` is used only
    by the first request that matches; requests that do not match pass it by.

    Tool loops: when the request offers tools and lets the model choose (not forced, not ``none``), ``tool_calls``
    (a list of ``{"name": ..., "input": {...}}``) answers with those calls, all in one turn, on the API's wire
    format. A scripted behaviour with either field matches only requests that offer tools without forcing one, and
    ``match_tool_results`` only a conversation holding exactly that many tool results, so a test scripts each turn
    of a loop by the state it answers. A text answer to a conversation with tool results is, by default,
    ``"fake answer from tools: "`` + the results (errors marked) joined by " | ".
    """

    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    text: str | None = None
    tool_input: dict[str, Any] | None = None
    latency_s: float = 0.0
    delta_delay_s: float = 0.0
    stream_hold_s: float = 0.0
    stream_error_type: str | None = None
    stream_error_after: int = 1
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0
    refuse_tool: bool = False
    refuse_tools: bool = False
    refuse_response_format: bool = False
    no_stream_usage: bool = False
    stream_drop_after: int | None = None
    echo: bool = False
    match_text: str | None = None
    match_model: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    match_tool_results: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Behaviour:
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        behaviour = cls(**data)
        if behaviour.match_text is not None:
            re.compile(behaviour.match_text)  # a bad pattern fails the control request, not a later API call
        return behaviour

    def matches(self, body: Mapping[str, Any]) -> bool:
        if self.match_model is not None and body.get("model") != self.match_model:
            return False
        if (self.tool_calls is not None or self.match_tool_results is not None) and not offers_tools(body):
            return False  # a tool loop's turn, not a planner's forced call or a synthesis
        if self.match_tool_results is not None and len(tool_results(body)) != self.match_tool_results:
            return False
        return self.match_text is None or re.search(self.match_text, last_user_text(body)) is not None

    def error_headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["retry-after"] = _number(self.retry_after)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = _number(self.retry_after_ms)
        return headers


@dataclass
class RecordedRequest:
    """One request as received, and what was answered (``usage`` only once the answer's usage was sent).

    ``received_s`` is the fake's ``time.monotonic()`` on arrival, ``finished_s`` once the answer (or error) has been
    sent or the client went away: compare them only with other requests' values.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int | None = None
    answer: Any = None
    usage: dict[str, Any] | None = None
    disconnected: bool = False
    cache: CacheUse = field(default_factory=CacheUse)
    received_s: float = field(default_factory=time.monotonic)
    finished_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FakeAPI:
    """The ASGI app and its state; ``start()``/``with`` serve it on a loopback port in a background thread."""

    name: ClassVar[str]
    api_path: ClassVar[str]  # the one POST route of the API
    id_prefix: ClassVar[str]  # of answer ids, e.g. msg_fake_
    error_type_of_status: ClassVar[Mapping[int, str]]

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key  # when set, requests must carry exactly this key
        self._address = (host, port)
        self._changed = threading.Condition()
        self._script: deque[Behaviour] = deque()
        self._default = Behaviour()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self.prompt_cache = PromptCache()
        self._rate_limit: RateLimit | None = None
        self._rate_limited = 0  # 429s the rate limit sent
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- the wire format, given by each fake --

    def invalid(self, record: RecordedRequest) -> tuple[int, str, str] | None:
        """(status, error type, message) when the real API would refuse the request."""
        raise NotImplementedError

    async def send_error(
        self, send: Send, status: int, error_type: str, message: str, extra: Mapping[str, str] | None = None
    ) -> None:
        raise NotImplementedError

    async def answer(self, record: RecordedRequest, behaviour: Behaviour, answer_id: str, send: Send) -> None:
        """Sends the 200 answer; calls ``record_usage`` before the usage leaves."""
        raise NotImplementedError

    def arrived(self, record: RecordedRequest, behaviour: Behaviour) -> None:
        """What the API decides as a valid request arrives, before its latency: its prompt cache lookup."""

    def rate_limit_headers(self, limit: RateLimit) -> dict[str, str]:
        """The API's headers about the rate limit's state (``tests.support.fake_rate_limit``)."""
        raise NotImplementedError

    # -- scripting and inspection (thread-safe) --

    def script(self, *behaviours: Behaviour, times: int = 1) -> None:
        """Queues behaviours for the next valid requests, in order, each ``times`` times."""
        with self._changed:
            for behaviour in behaviours:
                self._script.extend([behaviour] * times)

    def set_default(self, behaviour: Behaviour | None = None) -> None:
        """What requests get once the script is used up (None: the deterministic answer)."""
        with self._changed:
            self._default = behaviour or Behaviour()

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Requests beyond ``limit`` get a 429 before any behaviour is used (None: no limit)."""
        with self._changed:
            self._rate_limit = limit
            self._rate_limited = 0

    def reset(self) -> None:
        with self._changed:
            self._rate_limit = None
            self._rate_limited = 0
            self._script.clear()
            self._default = Behaviour()
            self._requests.clear()
            self.prompt_cache = PromptCache()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def wait_until(self, predicate: Callable[[Self], bool], within_s: float = 10.0) -> None:
        """Blocks until ``predicate(self)`` holds (checked on every change), or fails after ``within_s``."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), within_s):
                raise TimeoutError(f"fake {self.name}: condition not met within {within_s} s")

    async def async_wait_until(self, predicate: Callable[[Self], bool], within_s: float = 10.0) -> None:
        """``wait_until`` for async tests: waits in a thread so the event loop keeps serving the client."""
        await asyncio.to_thread(self.wait_until, predicate, within_s)

    def state(self) -> dict[str, Any]:
        with self._changed:
            return {
                "in_flight": self._in_flight,
                "request_count": len(self._requests),
                "scripted": len(self._script),
                "rate_limited": self._rate_limited,
            }

    def record_usage(self, record: RecordedRequest, usage: dict[str, Any]) -> None:
        with self._changed:
            record.usage = usage
            self._changed.notify_all()

    # -- serving in a thread --

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> Self:
        sock = bind(*self._address)
        self.port = sock.getsockname()[1]
        # The socket already listens, so clients may connect before the loop runs: nothing to wait for.
        self._server = uvicorn.Server(server_config(self))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- ASGI --

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/_control/"):
            await self._control(scope, receive, send)
        elif path == self.api_path and scope["method"] == "POST":
            await self._handle(scope, receive, send)
        else:
            await self.send_error(send, 404, "not_found_error", f"{scope['method']} {path} is not served by the fake")

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = RecordedRequest(scope["method"], scope["path"], headers, body)
        with self._changed:
            self._requests.append(record)
            self._in_flight += 1
            answer_id = f"{self.id_prefix}{len(self._requests):04d}"
            self._changed.notify_all()
        try:
            responding = self._respond(record, answer_id, send)
            record.disconnected = not await _unless_disconnected(receive, responding)
        finally:
            with self._changed:
                record.finished_s = time.monotonic()
                self._in_flight -= 1
                self._changed.notify_all()

    async def _respond(self, record: RecordedRequest, answer_id: str, send: Send) -> None:
        if problem := self.invalid(record):
            status, error_type, message = problem
            record.status = status
            await self.send_error(send, status, error_type, message)
            return
        admitted, headers = self._admit()
        if headers:
            send = _adding_headers(send, headers)
        if not admitted:
            record.status = 429
            error_type = self.error_type_of_status.get(429, "rate_limit_error")
            await self.send_error(send, 429, error_type, "fake rate limit: too many requests")
            return
        behaviour = self._next_behaviour(record.body)
        self.arrived(record, behaviour)
        await asyncio.sleep(behaviour.latency_s)
        record.status = behaviour.status
        if behaviour.status != 200:
            error_type = behaviour.error_type or self.error_type_of_status.get(behaviour.status, "api_error")
            message = behaviour.error_message or f"fake {error_type}"
            await self.send_error(send, behaviour.status, error_type, message, behaviour.error_headers())
            return
        await self.answer(record, behaviour, answer_id, send)

    def _admit(self) -> tuple[bool, dict[str, str]]:
        """Whether the rate limit lets the request through, and the headers every answer then carries."""
        with self._changed:
            limit = self._rate_limit
            if limit is None:
                return True, {}
            admitted = limit.take(time.monotonic())
            headers = self.rate_limit_headers(limit) if limit.headers else {}
            if not admitted:
                self._rate_limited += 1
                headers["retry-after"] = str(limit.retry_after_s())
            return admitted, headers

    def _next_behaviour(self, body: Mapping[str, Any]) -> Behaviour:
        with self._changed:
            for index, behaviour in enumerate(self._script):
                if behaviour.matches(body):
                    del self._script[index]
                    return behaviour
            return self._default

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        route = (scope["method"], scope["path"].removeprefix("/_control/"))
        try:
            data: Any = json.loads(raw) if raw else {}
            if route == ("POST", "script"):
                for item in data.get("behaviours", []):
                    times = int(item.pop("times", 1))
                    self.script(Behaviour.from_json(item), times=times)
            elif route == ("POST", "default"):
                self.set_default(Behaviour.from_json(data))
            elif route == ("POST", "rate_limit"):
                self.set_rate_limit(RateLimit.from_json(data) if data else None)
            elif route == ("POST", "reset"):
                self.reset()
            elif route == ("POST", "wait"):
                if not await self._wait_for_state(data):
                    await self.send_error(send, 408, "timeout_error", f"state {self.state()} never matched {data}")
                    return
            elif route == ("GET", "requests"):
                await send_json(send, 200, {"requests": [r.to_json() for r in self.requests], **self.state()})
                return
            elif route != ("GET", "state"):
                await self.send_error(send, 404, "not_found_error", f"no control route {route}")
                return
        except (ValueError, TypeError, AttributeError) as exc:
            await self.send_error(send, 400, "invalid_request_error", f"bad control request: {exc}")
            return
        await send_json(send, 200, self.state())

    async def _wait_for_state(self, data: dict[str, Any]) -> bool:
        within_s = float(data.pop("within_s", 10.0))
        if unknown := set(data) - set(self.state()):
            raise ValueError(f"unknown state fields: {sorted(unknown)}")
        try:
            await self.async_wait_until(lambda fake: all(fake.state()[k] == v for k, v in data.items()), within_s)
        except TimeoutError:
            return False
        return True


# -- what both APIs' requests look like --


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def last_user_text(body: Mapping[str, Any]) -> str:
    """The last user message that has text (an Anthropic user message of only tool results has none)."""
    texts = [text_of(m.get("content")) for m in body["messages"] if m.get("role") == "user"]
    return next((text for text in reversed(texts) if text), texts[-1] if texts else "")


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Tools listed and none forced (``auto`` or ``none``, in either API's words): a tool loop's turn."""
    choice = body.get("tool_choice")
    forced = (isinstance(choice, dict) and choice.get("type") in ("tool", "function", "any")) or choice == "required"
    return bool(body.get("tools")) and not forced


@dataclass(frozen=True)
class SeenResult:
    """A tool result found in a request, in either API's format."""

    call_id: str
    content: str
    is_error: bool


def tool_results(body: Mapping[str, Any]) -> list[SeenResult]:
    """Every tool result of the conversation: Anthropic ``tool_result`` blocks, OpenAI ``tool`` messages."""
    seen = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            seen.append(SeenResult(str(message.get("tool_call_id")), text_of(message.get("content")), False))
            continue
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = text_of(block.get("content"))
                seen.append(SeenResult(str(block.get("tool_use_id")), text, bool(block.get("is_error"))))
    return seen


def answer_from_tools(results: list[SeenResult]) -> str:
    return TOOLS_ANSWER_PREFIX + " | ".join(("(error) " if r.is_error else "") + r.content for r in results)


def default_plan(text: str) -> dict[str, Any]:
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [text.strip() or "(empty request)"]
    return {
        "subtasks": [
            {"id": f"t{i}", "title": line[:60], "instruction": line, "depends_on": []}
            for i, line in enumerate(lines, start=1)
        ]
    }


def default_tool_input(tool: str, asked: str) -> dict[str, Any]:
    return default_plan(asked) if tool == "plan" else {"input": asked[:80]}


def default_text(asked: str, behaviour: Behaviour, results: list[SeenResult] | None = None) -> str:
    if behaviour.text is not None:
        return behaviour.text
    if results:
        return answer_from_tools(results)
    return asked if behaviour.echo else ANSWER_PREFIX + asked[:80]


def words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text)


# -- ASGI plumbing --


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _unless_disconnected(receive: Receive, work: Awaitable[None]) -> bool:
    """Runs ``work`` but cancels it when the client goes away; returns whether it finished."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


def _adding_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """``send`` with ``headers`` added to the response's start, whichever fake's code sends it."""
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *raw]}
        await send(message)

    return sending


async def start_response(send: Send, status: int, content_type: str, extra: Mapping[str, str] | None = None) -> None:
    headers = {"content-type": content_type, **(extra or {})}
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def send_json(send: Send, status: int, data: Any, extra: Mapping[str, str] | None = None) -> None:
    await start_response(send, status, "application/json", extra)
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})


async def send_event(send: Send, data: str, event: str | None = None) -> None:
    """One server-sent event (``event:`` line only when named)."""
    chunk = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
    await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})


def bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -- serving --


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose protocol says TCP, as a real API
    # server has it. Without it each answer's body waited for the client's delayed ACK (~40 ms per kept-alive call).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def server_config(app: FakeAPI, *, own_logging: bool = False) -> uvicorn.Config:
    """``own_logging`` lets uvicorn configure logging, which only a process of its own should do."""
    return uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_level="warning",
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        access_log=False,
        timeout_graceful_shutdown=2,
        # As real API servers do, idle connections stay open well past a pause between two calls: with
        # uvicorn's 5 s a client could reuse a connection the server was closing and see a read error.
        timeout_keep_alive=75,
    )


@dataclass
class FakeAPIProcess:
    """A fake running as a child process, with its control API."""

    process: subprocess.Popen[str]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, method: str, route: str, payload: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_control/{route}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def script(self, *behaviours: Mapping[str, Any]) -> None:
        self.control("POST", "script", {"behaviours": list(behaviours)})

    def rate_limit(self, capacity: float, refill_per_s: float, *, headers: bool = True) -> None:
        """A token bucket of requests (``tests.support.fake_rate_limit``)."""
        self.control("POST", "rate_limit", {"capacity": capacity, "refill_per_s": refill_per_s, "headers": headers})

    def requests(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests")["requests"])

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "state"))

    def wait_for_state(self, within_s: float = 10.0, **wanted: int) -> dict[str, Any]:
        """Long-polls until the state has these values (e.g. ``in_flight=0``); raises on timeout."""
        response = httpx.post(
            f"{self.base_url}/_control/wait", json={**wanted, "within_s": within_s}, timeout=within_s + 5
        )
        response.raise_for_status()
        return dict(response.json())


@contextmanager
def spawn_fake(module: str, api_key: str | None = None) -> Iterator[FakeAPIProcess]:
    """Runs ``python -m <module> --port 0`` and always stops it with SIGTERM."""
    command = [sys.executable, "-m", module, "--port", "0"]
    if api_key:
        command += ["--api-key", api_key]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("PORT="):
            raise RuntimeError(f"{module} did not start (exit code {process.poll()}, said {line!r})")
        yield FakeAPIProcess(process, int(line.removeprefix("PORT=")))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def serve_main(fake_class: type[FakeAPI], argv: list[str] | None = None) -> None:
    """The ``__main__`` of a fake: serve it until SIGTERM, announcing the port."""
    parser = argparse.ArgumentParser(description=f"Serve a fake {fake_class.name} API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed as PORT=<n>)")
    parser.add_argument("--api-key", default=None, help="when set, requests must carry this key")
    args = parser.parse_args(argv)
    app = fake_class(api_key=args.api_key, host=args.host, port=args.port)
    sock = bind(args.host, args.port)
    print(f"PORT={sock.getsockname()[1]}", flush=True)  # the socket listens already: ready
    uvicorn.Server(server_config(app, own_logging=True)).run(sockets=[sock])
