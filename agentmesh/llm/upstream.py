"""What every HTTP model provider does alike at its boundary: retry-after, redaction, the request id header."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from agentmesh.llm.provider import AuthenticationFailed, BadRequest, ProviderError, RateLimited, Unavailable
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


def quota_scope(where: str, api_key: str | None) -> str:
    """Which quota an API's calls draw on: its origin and a short fingerprint of the key (never the key)."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:12] if api_key else "no-key"
    return f"{where}#{fingerprint}"


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


def refused_connection(exc: BaseException) -> BaseException | None:
    """The refused or reset connection behind an SDK error, if that is what it was.

    The SDKs' aiohttp transport reports a refused connection as a connect *timeout*; the user needs to hear
    that nothing answered at the address, which is a setting to check, not a server being slow.
    """
    cause = exc.__cause__
    while cause is not None:
        os_error = getattr(cause, "os_error", cause)  # aiohttp keeps the socket's error there
        if isinstance(os_error, ConnectionError):
            return os_error
        cause = cause.__cause__
    return None


def connection_cause(exc: BaseException, message: str) -> str:
    """What failed, as ``Class: text``: the refused connection when there was one, else the SDK's cause."""
    cause = refused_connection(exc) or exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else message


def error_for_status(
    status: int, said: str, *, api: str, key_variable: str, retry_after: float | None, details: dict[str, Any]
) -> ProviderError:
    """The common end of every provider's ``map_error``: our error class for an upstream HTTP status.

    ``api`` names the upstream in the message ("Anthropic API"), ``said`` is its redacted "(status type: text)",
    ``key_variable`` the setting an operator checks when the credentials are refused.
    """
    if status == 429:
        return RateLimited(f"{api} rate limit reached {said}", True, retry_after, details)
    if status >= 500:
        return Unavailable(f"{api} failed on its side {said}", True, retry_after, details)
    if status in (401, 403):
        return AuthenticationFailed(
            f"{api} rejected the credentials {said}: check {key_variable} and its permissions", details=details
        )
    return BadRequest(f"{api} rejected the request {said}", details=details)
