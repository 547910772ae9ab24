"""The error the emulator's API answers with: a status, a code, a message and details."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "validation_error"]


class ApiError(Exception):
    """An expected failure, rendered as ``{"success": false, "code", "message", "details"}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def validation_error(field: str, message: str) -> ApiError:
    """A 400 ``validation_error`` about one field."""
    return ApiError(
        400, "validation_error", f"{field}: {message}", [{"field": field, "message": message}]
    )
