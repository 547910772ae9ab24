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

    Mirrors the platform's error object ``{"error": {type, code, message, param,
    details, doc_url}}``: ``status_code`` (also ``status``) is the HTTP status (None
    when no answer arrived), ``type`` the error family (``invalid_request_error``,
    ``not_found_error``, ``rate_limit_error``...), ``code`` the machine-readable code
    (``"unauthorized"``, ``"customer_not_found"``...), ``message`` a human-readable
    explanation, ``param`` the offending parameter, ``details`` whatever extra the API
    sent, ``doc_url`` the page that documents the code and ``request_id`` the
    ``x-request-id`` header Commet support can trace. Every value the server sent is
    stripped of the API key.
    """

    def __init__(
        self,
        status_code: int | None,
        code: str | None,
        message: str,
        details: Any = None,
        *,
        type: str | None = None,
        param: str | None = None,
        doc_url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.type = type
        self.param = param
        self.doc_url = doc_url
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its attributes, so errors survive pickling (task queues,
        # multiprocessing) whatever their constructor's signature.
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    @property
    def status(self) -> int | None:
        """The HTTP status, same as ``status_code``."""
        return self.status_code

    def __str__(self) -> str:
        prefix = " ".join(str(p) for p in (self.status_code, self.code) if p is not None)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, type={self.type!r}, "
            f"code={self.code!r}, message={self.message!r}, param={self.param!r}, "
            f"request_id={self.request_id!r})"
        )


class CommetValidationError(CommetAPIError):
    """The request was rejected as invalid (``code == "validation_error"``).

    ``errors`` (also ``validation_errors``, the official SDK's name) maps each
    offending field to its messages, e.g. ``{"customerId": ["Required"]}``; problems
    not tied to a field are under ``""``.
    """

    def __init__(
        self,
        status_code: int | None,
        code: str | None,
        message: str,
        details: Any = None,
        errors: dict[str, list[str]] | None = None,
        *,
        type: str | None = None,
        param: str | None = None,
        doc_url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(
            status_code,
            code,
            message,
            details,
            type=type,
            param=param,
            doc_url=doc_url,
            request_id=request_id,
        )
        self.errors: dict[str, list[str]] = errors if errors is not None else {}

    @property
    def validation_errors(self) -> dict[str, list[str]]:
        """Same as ``errors``."""
        return self.errors


class CommetConnectionError(CommetAPIError):
    """No HTTP answer: the connection failed or broke, after every allowed retry."""

    def __init__(self, message: str, code: str = "connection_error") -> None:
        super().__init__(None, code, message, type="connection_error")


class CommetTimeoutError(CommetConnectionError):
    """The API did not answer within the configured timeout, after every allowed retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


def _restore(cls: type[CommetAPIError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
