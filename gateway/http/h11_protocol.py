"""uvicorn's h11 protocol with what an internet-facing server needs: read deadlines and a bound on connections.

uvicorn times out only idle keep-alive connections: a client that sends its headers, or its body, a byte at a time
holds a connection (and a socket) for as long as it likes. The deadlines here are per phase of a request, not per
byte, so trickling does not extend them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.openai.errors import ApiError, service_unavailable

if TYPE_CHECKING:  # uvicorn's private typing module: annotations only
    from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

logger = logging.getLogger(__name__)

Phase = Literal["headers", "body"]


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout_s: float  # seconds from "ready for a request" to its last header line
    body_timeout_s: float  # seconds from the last header line to the body's end
    max_connections: int  # open connections; a request on one more is answered 503


class EdgeH11Protocol(H11Protocol):
    """One connection. Its deadline follows the request's phase (h11's view of the client):

    - waiting for a request (a new connection, or the previous response sent): the request line and headers must
      arrive within ``header_timeout_s``, else the connection is closed;
    - reading a body: it must end within ``body_timeout_s``, else a 408 (if no response has started) and close;
    - otherwise (the request is read, the response is being written) no deadline: streams last as long as they do.
    """

    limits: ClassVar[EdgeLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        app = self.app

        async def bounded(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            # This connection is already counted, hence ">".
            if len(self.connections) > self.limits.max_connections:
                logger.warning("refused a request: MAX_CONNECTIONS (%d) open", self.limits.max_connections)
                response = service_unavailable("the server has too many open connections", "too_many_connections")
                response.headers = {**(response.headers or {}), "Connection": "close"}
                await response.response()(scope, receive, send)  # type: ignore[arg-type]
                return
            await app(scope, receive, send)

        self.app = bounded

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_phase()

    def handle_events(self) -> None:
        super().handle_events()
        self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        super().connection_lost(exc)

    def _follow_phase(self) -> None:
        """Arms a deadline when the phase changes; bytes arriving within a phase leave it where it was."""
        if self.transport.is_closing():
            self._arm(None)
            return
        state = self.conn.their_state
        self._arm("headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None)

    def _arm(self, phase: Phase | None) -> None:
        if phase == self._phase and (phase is None or self._deadline is not None):
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            seconds = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
            self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _expired(self, phase: Phase) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        if phase == "headers":
            logger.info("closed %s: no complete request within HTTP_HEADER_TIMEOUT", client)
        else:
            logger.info("closed %s: request body incomplete after HTTP_BODY_TIMEOUT", client)
            if self.cycle is not None and not self.cycle.response_started:
                self._send_timeout()
        if self.cycle is not None:
            # The app waiting on this body now reads a disconnect, and anything it sends is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _send_timeout(self) -> None:
        error = ApiError(
            408,
            f"the request body did not arrive within {self.limits.body_timeout_s:g} s (HTTP_BODY_TIMEOUT)",
            "invalid_request_error",
            code="request_timeout",
        )
        body = json.dumps(error.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (h11.Response(status_code=408, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:  # h11 cannot answer in its current state: the close says enough
            pass


def edge_protocol(limits: EdgeLimits) -> type[EdgeH11Protocol]:
    """The protocol class uvicorn instantiates per connection, carrying these limits."""
    return type("EdgeH11Protocol", (EdgeH11Protocol,), {"limits": limits})
