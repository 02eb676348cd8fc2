"""OpenAI-shaped errors: the one gRPC-status-to-HTTP mapping and the app's exception handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentmesh.request_context import REQUEST_ID_HEADER, current_request_id
from agentmesh.rpc.errors import is_own_status, message_too_large, public_words
from gateway.http.request_id import echoed_request_id
from gateway.openai.protocol import ErrorDetail, ErrorResponse, InvalidRequest

logger = logging.getLogger(__name__)

# nginx's "client closed request": logged for requests whose client went away; never reaches anyone.
CLIENT_CLOSED_REQUEST = 499
RETRY_AFTER_SECONDS = 5
_INTERNAL = "internal error (see the gateway log for this request id)"


class ApiError(StarletteHTTPException):
    """An error response in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

    An HTTPException so that FastAPI re-raises it even from inside body parsing (see body_limit).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, dict(headers or {}))
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        detail = ErrorDetail(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorResponse(error=detail).model_dump()

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


_DOCUMENTED = {
    400: "the request cannot be served as sent (malformed JSON, unsupported content, too many messages or characters, "
    "a max_cost_usd too small for the run)",
    401: "missing, malformed, expired or otherwise invalid bearer token (with WWW-Authenticate: Bearer)",
    404: "unknown model (code model_not_found)",
    413: "request body larger than MAX_REQUEST_BODY_SIZE, or a request too large to pass between the services",
    422: "the request does not match the schema",
    429: "rate limit, concurrency cap or daily spend limit (insufficient_quota) reached, or the model API is rate "
    "limited (Retry-After says when to retry)",
    502: "the model API rejected the service's credentials",
    503: "the orchestrator or the rate limiter's storage is unavailable (Retry-After)",
    504: "the request's deadline passed",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for errors in OpenAI's shape."""
    return {status: {"model": ErrorResponse, "description": _DOCUMENTED[status]} for status in statuses}


_RETRY = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def service_unavailable(message: str, code: str) -> ApiError:
    """A 503 that tells the client when to try again."""
    return ApiError(503, message, "service_unavailable_error", code=code, headers=dict(_RETRY))


# gRPC status -> (HTTP status, OpenAI error type, extra headers)
_RPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str, Mapping[str, str]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error", {}),
    # The orchestrator's answer when the request's cost cap cannot cover the run.
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error", {}),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error", _RETRY),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error", _RETRY),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error", {}),
    # The orchestrator says UNAUTHENTICATED when the model API rejected the service's own key.
    grpc.StatusCode.UNAUTHENTICATED: (502, "upstream_error", {}),
    grpc.StatusCode.CANCELLED: (CLIENT_CLOSED_REQUEST, "request_cancelled", {}),
}


def rpc_error(exc: grpc.aio.AioRpcError) -> ApiError:
    """The one mapping from a failed Orchestrator call to an HTTP error.

    The orchestrator's own messages name the failed phase and are passed on; gRPC's own (connection failures,
    message-size limits) would show addresses and byte counts, so the client gets our words and the log the detail.
    """
    code = exc.code()
    headers: Mapping[str, str]
    if message_too_large(exc):
        status, type_, headers = 413, "invalid_request_error", {}
        message = "the request is too large for the mesh to pass between its services: send fewer or shorter messages"
        error_code = "request_too_large"
    else:
        status, type_, headers = _RPC_TO_HTTP.get(code, (500, "server_error", {}))
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not is_own_status(exc):
            status, type_, headers = 503, "service_unavailable_error", _RETRY  # a gRPC limit, not a rate limit
        message = public_words(exc) if status != 500 or is_own_status(exc) else _INTERNAL
        error_code = code.name.lower()
    log = logger.info if status == CLIENT_CLOSED_REQUEST else logger.warning
    log("orchestrator call failed", extra={"grpc_status": code.name, "status": status, "detail": exc.details()})
    param = "max_cost_usd" if code == grpc.StatusCode.FAILED_PRECONDITION else None
    return ApiError(status, message, type_, param=param, code=error_code, headers=headers)


def shutting_down() -> ApiError:
    """A run the gateway ended because its shutdown grace period ran out: the client may retry elsewhere."""
    return service_unavailable("the gateway is shutting down and ended this run; retry the request", "shutting_down")


def _type_for_status(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequest)
    return ApiError(400, exc.message, "invalid_request_error", param=exc.param).response()


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = ApiError(exc.status_code, str(exc.detail), _type_for_status(exc.status_code), headers=exc.headers)
    return error.response()


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """Rewrites FastAPI's ``{"detail": [...]}``: a body that is not a JSON object is a 400, a schema violation a 422."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "malformed JSON")
        return ApiError(400, f"request body is not valid JSON: {reason}", "invalid_request_error").response()
    if tuple(first.get("loc", ())) == ("body",):
        message = "request body must be a JSON object, sent with Content-Type: application/json"
        return ApiError(400, message, "invalid_request_error").response()
    message = "; ".join(f"{_location(error)}: {error.get('msg', 'invalid')}" for error in errors)
    return ApiError(422, message or "invalid request", "invalid_request_error", param=_location(first)).response()


def _location(error: Mapping[str, Any]) -> str:
    """``("body", "messages", 0, "role")`` -> ``messages[0].role``."""
    parts = list(error.get("loc", ()))
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _unexpected(headers: Mapping[str, str]) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        """Runs in Starlette's ServerErrorMiddleware, outside every middleware of ours, so it sets the request id
        and the security ``headers`` itself.

        Not logged here: the middleware re-raises, and the server logs the traceback once (with the request id).
        """
        error = ApiError(500, _INTERNAL, "server_error")
        response = error.response()
        response.headers.update(headers)
        if (request_id := echoed_request_id(request.scope) or current_request_id()) is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    return handler


def install_error_handlers(app: FastAPI, crash_headers: Mapping[str, str]) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidRequest, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected(crash_headers))
