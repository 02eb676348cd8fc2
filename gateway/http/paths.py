"""Which requests are the API: the path routes match, and the /v1 prefix that authentication and no-store cover."""

from __future__ import annotations

from starlette.types import Scope

PROTECTED_PREFIX = "/v1/"


def route_path(scope: Scope) -> str:
    """The path routes match against (without a ``root_path`` prefix)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def is_protected(scope: Scope) -> bool:
    return route_path(scope).startswith(PROTECTED_PREFIX)
