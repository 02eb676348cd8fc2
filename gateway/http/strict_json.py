"""Request bodies parsed as JSON (RFC 8259): ``NaN`` and ``Infinity``, which Python's parser accepts, are refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _refuse_constant(name: str) -> Any:
    # FastAPI turns a JSONDecodeError into its "json_invalid" validation error: our 400 for malformed JSON.
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_constant=_refuse_constant)
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose body parser refuses non-JSON numbers: a ``temperature`` of NaN is a malformed request,
    not a value to carry through the mesh."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
