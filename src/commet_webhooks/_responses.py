"""What a delivery is answered: :class:`WebhookResponse`, its :class:`Outcome`, the fixed answers.

Every answer says what happened (``outcome``) and carries the parsed event when there
is one, so adapters, the CLI and instrumentation read the outcome instead of parsing
bodies. Fixed answers are encoded once; only their ``event`` varies per delivery.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from ._envelope import WebhookEvent

__all__ = ["Outcome", "WebhookResponse"]


class Outcome(str, enum.Enum):
    """What happened to a delivery (``response.outcome``)."""

    OK = "ok"
    """Verified, and every handler succeeded (or there was none)."""
    DUPLICATE = "duplicate"
    """Already processed: answered 200 without running handlers."""
    BUSY = "busy"
    """Being processed by another worker right now: answered 409 so Commet retries."""
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_PAYLOAD = "invalid_payload"
    """Authentic, but not a JSON envelope at all (400)."""
    HANDLER_ERROR = "handler_error"
    """A handler raised: 200 with a warning, or 500 under ``retry_on_handler_error``."""
    ACCEPTED_RAW = "accepted_raw"
    """A known event type that did not fit its class: delivered untyped, see the docs."""
    STORE_UNAVAILABLE = "store_unavailable"
    QUEUED = "queued"
    """Verified and accepted by the task queue (``offload=``); a worker runs the handlers."""
    OFFLOAD_UNAVAILABLE = "offload_unavailable"
    """The task queue did not accept the delivery: answered 503 so Commet retries."""
    TOO_LARGE = "too_large"
    NOT_ALLOWED = "not_allowed"
    NOT_FOUND = "not_found"
    """Not a webhook route (the CLI's ``listen`` receiver only)."""
    CANCELLED = "cancelled"
    """Cancelled before an answer (the client went away, or a timeout): nothing is sent
    and Commet counts the attempt as failed. Observers see it; ``handle`` raises."""

    def __str__(self) -> str:
        return self.value


_JSON: Mapping[str, str] = {"content-type": "application/json"}


class WebhookResponse(msgspec.Struct, frozen=True):
    """What to answer Commet: a status, a JSON body and headers, and what happened."""

    status: int
    body: bytes
    headers: Mapping[str, str] = msgspec.field(default_factory=lambda: dict(_JSON))
    outcome: Outcome = Outcome.OK
    event: WebhookEvent | None = None
    """The verified event, when the body got that far (``None`` for 403, 405, 413)."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def with_event(self, event: WebhookEvent) -> WebhookResponse:
        """This answer, about ``event``."""
        return WebhookResponse(self.status, self.body, self.headers, self.outcome, event)


def answer(
    status: int, payload: Mapping[str, object], outcome: Outcome, **extra_headers: str
) -> WebhookResponse:
    headers = {**_JSON, **extra_headers} if extra_headers else _JSON
    return WebhookResponse(status, msgspec.json.encode(payload), headers, outcome)


def invalid_payload(detail: str, event: WebhookEvent | None = None) -> WebhookResponse:
    body = {"received": False, "error": "Invalid payload", "detail": detail}
    return WebhookResponse(400, msgspec.json.encode(body), _JSON, Outcome.INVALID_PAYLOAD, event)


def failure(
    message: str, *, retry: bool, outcome: Outcome, event: WebhookEvent
) -> WebhookResponse:
    """A verified event whose handling failed: 500 (retry) or 200 with a warning."""
    payload: dict[str, Any] = (
        {"received": False, "error": message} if retry else {"received": True, "warning": message}
    )
    return WebhookResponse(
        500 if retry else 200, msgspec.json.encode(payload), _JSON, outcome, event
    )


OK = answer(200, {"received": True}, Outcome.OK)
DUPLICATE = answer(200, {"received": True, "duplicate": True}, Outcome.DUPLICATE)
INVALID_SIGNATURE = answer(
    403, {"received": False, "error": "Invalid signature"}, Outcome.INVALID_SIGNATURE
)
BUSY = answer(
    409,
    {"received": False, "error": "Event is being processed by another worker"},
    Outcome.BUSY,
    **{"retry-after": "60"},
)
TOO_LARGE = answer(413, {"received": False, "error": "Payload too large"}, Outcome.TOO_LARGE)
NOT_ALLOWED = answer(
    405, {"received": False, "error": "Method not allowed"}, Outcome.NOT_ALLOWED, allow="POST"
)
QUEUED = answer(200, {"received": True, "queued": True}, Outcome.QUEUED)
OFFLOAD_UNAVAILABLE = answer(
    503,
    {"received": False, "error": "Task queue unavailable"},
    Outcome.OFFLOAD_UNAVAILABLE,
    **{"retry-after": "60"},
)
UNREADABLE = answer(
    400, {"received": False, "error": "Unreadable request body"}, Outcome.INVALID_PAYLOAD
)
"""The server could not deliver the body (malformed chunked framing, client gone)."""
DISCONNECTED = answer(
    400, {"received": False, "error": "Client disconnected"}, Outcome.INVALID_PAYLOAD
)
CANCELLED = answer(
    499, {"received": False, "error": "Cancelled before an answer"}, Outcome.CANCELLED
)
"""What observers are told of a delivery cancelled mid-way; never sent (499: the client
closed the request, as servers log it)."""
UNAVAILABLE = answer(
    503,
    {"received": False, "error": "Idempotency store unavailable"},
    Outcome.STORE_UNAVAILABLE,
    **{"retry-after": "60"},
)
