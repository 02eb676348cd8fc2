"""What every HTTP model provider does alike at its boundary: retry-after, redaction, the request id header."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from agentmesh.request_context import REQUEST_ID_HEADER, current_request_id


class URLLike(Protocol):
    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...


def origin(url: URLLike) -> str:
    """``scheme://host[:port]`` of an API's base URL, for messages: never its userinfo or path."""
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def redact(upstream_text: str, api_key: str | None, key_like: re.Pattern[str]) -> str:
    """Upstream text is quoted in our messages; make sure no key ever rides along."""
    text = upstream_text.replace(api_key, "[redacted]") if api_key else upstream_text
    return key_like.sub("[redacted]", text)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def request_headers() -> dict[str, str] | None:
    """The current request id as a header, so upstream logs can be matched with ours."""
    request_id = current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else None
