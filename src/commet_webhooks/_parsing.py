"""The public verify-then-parse entry points of SPEC §2."""

from __future__ import annotations

from collections.abc import Sequence

from ._signing import secret_keys
from .errors import PayloadError, SignatureVerificationError
from .events import WebhookEvent, decode_event

__all__ = ["construct_event", "parse_event", "verify_and_parse"]

Body = bytes | bytearray | memoryview | str


def construct_event(
    raw_body: Body, signature: str | None, secret: str | Sequence[str]
) -> WebhookEvent:
    """Verify ``signature`` over ``raw_body`` and return the typed event.

    Raises :class:`SignatureVerificationError` (missing or wrong signature) or
    :class:`PayloadError` (authentic but not a valid envelope). A secret that is
    empty or not a string is a ``ValueError``: that is a programming error.
    """
    keys = secret_keys(secret)
    if signature is None or (isinstance(signature, str) and not signature.strip()):
        raise SignatureVerificationError("missing signature (X-Commet-Signature header)")
    if not keys.verify(raw_body, signature):
        raise SignatureVerificationError(
            "signature does not match the body; check the signing secret and that the "
            "raw, unmodified request body is passed"
        )
    return decode_event(raw_body)


def verify_and_parse(
    raw_body: Body, signature: str | None, secret: str | Sequence[str]
) -> WebhookEvent | None:
    """Like :func:`construct_event`, but returns ``None`` on any failure."""
    try:
        return construct_event(raw_body, signature, secret)
    except (SignatureVerificationError, PayloadError, ValueError, TypeError):
        return None


def parse_event(raw_body: Body) -> WebhookEvent:
    """Parse without checking a signature (tests, replays of stored events)."""
    if not isinstance(raw_body, (bytes, bytearray, memoryview, str)):
        raise PayloadError(f"body must be bytes or str, not {type(raw_body).__name__}")
    return decode_event(raw_body)
