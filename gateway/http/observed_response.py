"""The status a request was answered with and how long it took, for the middleware that log and count requests."""

from __future__ import annotations

import time

from starlette.types import Message, Send


class ObservedResponse:
    """Wraps ``send``; ``status`` stays 500 until a response starts: what the server answers if the app fails first."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._started = time.monotonic()
        self.status = 500

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started
