"""Helpers for your own tests: realistic sample events and signed requests.

>>> from commet_webhooks.testing import sample_event, signed_request
>>> body, headers = signed_request(sample_event("payment.failed"), "whsec_test")
>>> response = webhooks.handle_sync(body, headers)

Samples are the published examples of Commet's webhook contract, one per event type
of the registry; the CLI's ``trigger`` and the emulator build theirs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from . import _samples
from ._signing import sign
from ._wire import (
    API_VERSION,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    camel_case,
    iso_time,
)
from .events import EventType

__all__ = [
    "API_VERSION",
    "camel_case",
    "iso_time",
    "sample_data",
    "sample_event",
    "signed_request",
]

def sample_data(event_type: str | EventType, **overrides: Any) -> dict[str, Any]:
    """A realistic ``data`` object for ``event_type``, valid against Commet's contract.

    It is the contract's published example for that type; overrides take snake_case
    or camelCase keys (``invoice_total=5000``). An event type this library does not
    model gets ``{}`` plus the overrides.
    """
    return _samples.sample_data(_name(event_type), **overrides)


def sample_event(event_type: str | EventType, **overrides: Any) -> dict[str, Any]:
    """A realistic envelope for ``event_type`` (every modelled type, or any other name).

    Envelope keys (``id``, ``timestamp``, ``organization_id``, ``mode``,
    ``api_version``) override the envelope; ``data={...}`` replaces ``data`` wholesale;
    every other keyword overrides one ``data`` field (``invoice_total=5000``).
    """
    name = _name(event_type)
    replacement = overrides.pop("data", None)
    envelope_overrides, data_overrides = _samples.split_overrides(overrides)
    data = dict(replacement) if replacement is not None else _samples.sample_data(name)
    data.update(_samples.wire_value(data_overrides))
    envelope = _samples.sample_envelope(name, data)
    envelope.update(envelope_overrides)
    return envelope


def _name(event_type: str | EventType) -> str:
    return event_type.value if isinstance(event_type, EventType) else str(event_type)


def signed_request(
    payload: Mapping[str, Any] | bytes | str,
    secret: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Serialise (if needed) and sign ``payload``; return ``(body, headers)`` ready to POST.

    The headers are the ones Commet sends: signature, event type, timestamp, event
    id (when the payload has one) and ``Content-Type``. ``headers`` adds or overrides.
    """
    if isinstance(payload, bytes):
        body = payload
    elif isinstance(payload, str):
        body = payload.encode("utf-8")
    else:
        body = msgspec.json.encode(payload)
    envelope: Any = payload if isinstance(payload, Mapping) else _try_decode(body)
    out = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret),
    }
    if isinstance(envelope, Mapping):
        if isinstance(envelope.get("event"), str):
            out[EVENT_TYPE_HEADER] = envelope["event"]
        if isinstance(envelope.get("timestamp"), str):
            out[TIMESTAMP_HEADER] = envelope["timestamp"]
        if isinstance(envelope.get("id"), str):
            out[EVENT_ID_HEADER] = envelope["id"]
    if headers:
        out.update(headers)
    return body, out


def _try_decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
