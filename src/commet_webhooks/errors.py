"""The exception hierarchy. Messages say what was wrong and never carry a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._envelope import UnknownEvent

__all__ = [
    "EventSchemaError",
    "LeaseLostError",
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


class EventSchemaError(PayloadError):
    """A known event type whose fields do not fit its class: Commet's contract drifted.

    The envelope itself is valid, so the event is authentic and must not be lost:
    ``event`` is it, decoded untyped (an :class:`~commet_webhooks.UnknownEvent` whose
    ``data`` is the raw dict). ``Webhooks`` delivers it to ``on_payload`` and
    ``on_error`` and answers 200 with a warning instead of 400.
    """

    def __init__(self, message: str, *, field: str | None = None, event: UnknownEvent) -> None:
        super().__init__(message, field)
        self.event = event


class StoreUnavailableError(WebhookError):
    """The idempotency store could not be reached; the event must be retried later."""


class LeaseLostError(WebhookError):
    """A claim's lease ran out (or was taken over) while its handlers were still running.

    Reported to ``on_error``: another delivery of the same event may run the handlers
    again. Raise ``lease_seconds`` or move slow work to a task queue (``offload=``).
    """
