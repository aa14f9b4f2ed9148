"""One error envelope for every failure: `{"error": {"code", "message", "details"}}`.

Services raise `ApiError` (or a subclass); the handlers below turn it, Starlette's HTTP errors and
request-validation failures into the envelope. Anything unexpected becomes a logged 500 envelope,
which tests treat as a bug.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """A failure with a stable machine-readable code and a human message."""

    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details
        self.headers = headers or {}


class NotFound(ApiError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ApiError):
    status_code = 409
    code = "CONFLICT"


class Unauthorized(ApiError):
    status_code = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ApiError):
    status_code = 403
    code = "FORBIDDEN"


class Unprocessable(ApiError):
    status_code = 422
    code = "VALIDATION_ERROR"


class TooManyRequests(ApiError):
    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        retry_after = max(1, int(retry_after))
        kwargs.setdefault("details", {"retry_after": retry_after})
        super().__init__(message, headers={"Retry-After": str(retry_after)}, **kwargs)


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(envelope(code, message, details), status_code=status_code, headers=headers)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


# Validation failures that have a code of their own (the first such failure names the response's
# code; see `core.wire` for the types that raise them).
VALIDATION_CODES = {
    "timezone_aware": "DATETIME_OFFSET_REQUIRED",
    "datetime_out_of_range": "DATETIME_OUT_OF_RANGE",
    "bool_type": "NOT_A_BOOLEAN",
    "null_not_allowed": "NULL_NOT_ALLOWED",
}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    fields = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        fields.append({"field": ".".join(loc), "message": err.get("msg", ""), "type": err.get("type", "")})
    return fields


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's body parsing hit the recursion limit
        return error_response(400, "JSON_TOO_DEEP", "the body nests JSON deeper than any real request")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    return error_response(exc.status_code, code, message, None, getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    if any(f["type"] == "json_invalid" for f in fields):
        return error_response(400, "MALFORMED_JSON", "request body is not valid JSON", fields)
    code = next((VALIDATION_CODES[f["type"]] for f in fields if f["type"] in VALIDATION_CODES), None)
    return error_response(422, code or "VALIDATION_ERROR", "request failed validation", fields)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
    return error_response(500, "INTERNAL_ERROR", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
