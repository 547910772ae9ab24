"""The exception hierarchy. Messages say what was wrong and never carry a secret."""

from __future__ import annotations

__all__ = [
    "PayloadError",
    "SignatureVerificationError",
    "StoreUnavailableError",
    "WebhookError",
]


class WebhookError(Exception):
    """Base class of every error raised while receiving a webhook."""


class SignatureVerificationError(WebhookError):
    """The signature header is missing, malformed or does not match the body."""


class PayloadError(WebhookError):
    """The body is authentic but is not a valid Commet envelope.

    ``field`` names the offending JSON path (``$.data.invoiceTotal``) when known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StoreUnavailableError(WebhookError):
    """The idempotency store could not be reached; the event must be retried later."""
