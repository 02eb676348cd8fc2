"""GET /inspect: the run inspector, one static page with its script and style, shipped in the package."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.http.security_headers import INSPECTOR_CSP
from gateway.openai.errors import ApiError

router = APIRouter(include_in_schema=False)

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "inspect.js": "text/javascript; charset=utf-8",
    "inspect.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Read once: the page is part of the release, not a directory served from disk.
_FILES = {name: files("gateway.runs").joinpath("static", name).read_bytes() for name in _TYPES}


def _asset(name: str) -> Response:
    # Revalidated on every load: after an upgrade a browser must not pair the new page with an old script.
    return Response(_FILES[name], media_type=_TYPES[name], headers={"Cache-Control": "no-cache"})


@router.get("/inspect")
async def page() -> Response:
    response = _asset("index.html")
    response.headers["Content-Security-Policy"] = INSPECTOR_CSP
    return response


@router.get("/inspect/{name}")
async def asset(name: str) -> Response:
    if name == "index.html" or name not in _FILES:
        raise ApiError(404, f"no inspector file {name!r}", "invalid_request_error")
    return _asset(name)
