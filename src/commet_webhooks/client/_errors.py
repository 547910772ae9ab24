"""Errors raised by the state API client. None of them ever carries the API key."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CommetAPIError",
    "CommetConnectionError",
    "CommetTimeoutError",
    "CommetValidationError",
]


class CommetAPIError(Exception):
    """The Commet API answered with an error, or could not be reached.

    ``status_code`` is the HTTP status (None when no answer arrived), ``code`` the
    machine-readable error code (``"unauthorized"``, ``"not_found"``, ...),
    ``message`` a human-readable explanation and ``details`` whatever extra the API
    sent.
    """

    def __init__(
        self,
        status_code: int | None,
        code: str | None,
        message: str,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        prefix = " ".join(str(p) for p in (self.status_code, self.code) if p is not None)
        return f"{prefix}: {self.message}" if prefix else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class CommetValidationError(CommetAPIError):
    """The request was rejected as invalid (``code == "validation_error"``).

    ``errors`` maps each offending field to its messages, e.g.
    ``{"customerId": ["Required"]}``; problems not tied to a field are under ``""``.
    """

    def __init__(
        self,
        status_code: int | None,
        code: str | None,
        message: str,
        details: Any = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(status_code, code, message, details)
        self.errors: dict[str, list[str]] = errors if errors is not None else {}


class CommetConnectionError(CommetAPIError):
    """No HTTP answer: the connection failed or broke, after every allowed retry."""

    def __init__(self, message: str, code: str = "connection_error") -> None:
        super().__init__(None, code, message)


class CommetTimeoutError(CommetConnectionError):
    """The API did not answer within the configured timeout, after every allowed retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")
