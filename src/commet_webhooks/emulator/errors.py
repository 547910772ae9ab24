"""The emulator's expected failures and how each API style renders them.

Route code raises :class:`ApiError`; Starlette's exception handlers (installed by
:func:`exception_handlers`) turn it, an HTTP error or any unexpected exception into
an answer. ``/api/v1/...`` answers in the platform's shape,
``{"error": {type, code, message, param, details, doc_url}}``; the legacy and
emulator routes keep ``{"success": false, "code", "message", "details"}``. No
input produces a traceback in an answer.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

__all__ = ["ApiError", "error_response", "exception_handlers", "validation_error"]

logger = logging.getLogger("commet_webhooks.emulator")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    410: "not_found_error",
    413: "invalid_request_error",
    421: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "api_error",
}
_DOCS = "https://commet.co/docs/api/errors/"


class ApiError(Exception):
    """An expected failure: an HTTP status, a code, a message and optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.param = param


def validation_error(field: str, message: str) -> ApiError:
    """A 400 ``validation_error`` about one field."""
    return ApiError(
        400,
        "validation_error",
        f"{field}: {message}",
        [{"field": field, "message": message}],
        param=field,
    )


def is_platform_path(path: str) -> bool:
    return path == "/api/v1" or path.startswith("/api/v1/")


def error_response(error: ApiError, *, platform: bool = False) -> Response:
    """The JSON answer for ``error`` in the platform's shape or the legacy one."""
    if platform:
        body: dict[str, Any] = {
            "error": {
                "type": _TYPES.get(error.status, "api_error"),
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "details": error.details,
                "doc_url": _DOCS + error.code,
            }
        }
    else:
        body = {
            "success": False,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }
    return Response(msgspec.json.encode(body), error.status, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, platform=is_platform_path(request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api"):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        error = ApiError(exc.status_code, code, str(exc.detail))
        return error_response(error, platform=is_platform_path(request.url.path))
    return PlainTextResponse(str(exc.detail), exc.status_code)


async def _database_busy(request: Request, exc: Exception) -> Response:
    """Another process holds the database (locked past the busy timeout): retry soon."""
    text = str(exc).lower()
    if "locked" not in text and "busy" not in text:
        return await _server_error(request, exc)
    logger.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
    error = ApiError(503, "database_busy", "the emulator's database is busy; retry shortly")
    response = error_response(error, platform=is_platform_path(request.url.path))
    response.headers["retry-after"] = "1"
    return response


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    error = ApiError(500, "internal_error", "unexpected emulator error")
    return error_response(error, platform=is_platform_path(request.url.path))


def exception_handlers() -> dict[Any, Any]:
    """Starlette ``exception_handlers`` for the emulator's app."""
    return {
        ApiError: _api_error,
        HTTPException: _http_error,
        sqlite3.OperationalError: _database_busy,
        Exception: _server_error,
    }
