"""Admission: the pure first step of every delivery (size, signature, decode, tolerance).

``admit`` takes the raw body and headers and returns either the event to process or
the answer to send at once. It does no I/O and touches no store, so every edge case is
a test over plain bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec

from . import _responses as answers
from ._envelope import WebhookEvent
from ._responses import WebhookResponse
from ._signing import SecretKeys
from ._wire import get_header
from .errors import EventSchemaError, PayloadError
from .events import decode_event

__all__ = ["Admitted", "Rejected", "admit"]

logger = logging.getLogger("commet_webhooks")


class Admitted(msgspec.Struct, frozen=True):
    """A verified delivery to process.

    ``schema_error`` is set when a known event type did not fit its class: ``event``
    is then the untyped envelope, for the catch-all handlers only.
    """

    body: bytes
    event: WebhookEvent
    signature: str
    secret_index: int = 0
    """Which configured secret verified it (rotation: see ``SecretKeys.fingerprint``)."""
    schema_error: EventSchemaError | None = None


class Rejected(msgspec.Struct, frozen=True):
    """The answer to send without processing, and an error for ``on_error`` if any."""

    response: WebhookResponse
    error: PayloadError | None = None
    body: bytes = b""


def admit(
    body: bytes | bytearray | memoryview | str,
    headers: Mapping[str, str] | Any,
    keys: SecretKeys,
    max_body_bytes: int,
    tolerance: float | None = None,
) -> Admitted | Rejected:
    """Size, signature, decode and (optionally) timestamp checks, in that order."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif not isinstance(body, bytes):
        body = bytes(body)
    if len(body) > max_body_bytes:
        logger.warning("rejected webhook: body of %d bytes exceeds the limit", len(body))
        return Rejected(answers.TOO_LARGE)
    signature = get_header(headers, "x-commet-signature")
    secret_index = None if signature is None else keys.match(body, signature)
    if signature is None or secret_index is None:
        logger.warning(
            "rejected webhook: %s signature", "missing" if signature is None else "invalid"
        )
        return Rejected(answers.INVALID_SIGNATURE)
    try:
        event = decode_event(body)
    except EventSchemaError as drift:
        logger.warning("webhook %s accepted untyped: %s", drift.event.id or "", drift)
        return Admitted(body, drift.event, signature, secret_index, drift)
    except PayloadError as exc:
        logger.warning("rejected webhook: %s", exc)
        return Rejected(answers.invalid_payload(str(exc)), exc, body)
    if tolerance is not None:
        age = abs((datetime.now(timezone.utc) - event.timestamp).total_seconds())
        if age > tolerance:
            logger.warning("rejected webhook %s: timestamp outside tolerance", event.id)
            return Rejected(
                answers.invalid_payload("event timestamp is outside the accepted tolerance", event)
            )
    return Admitted(body, event, signature, secret_index)
