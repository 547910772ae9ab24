"""Helpers for your own tests: realistic sample events and signed requests.

>>> from commet_webhooks.testing import sample_event, signed_request
>>> body, headers = signed_request(sample_event("payment.failed"), "whsec_test")
>>> response = webhooks.handle_sync(body, headers)

Samples come from one table keyed by the event registry, so every modelled event
type has one; the CLI's ``trigger`` and the emulator use the same table.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from ._signing import sign
from .events import EVENT_TYPES, EventType

__all__ = [
    "API_VERSION",
    "camel_case",
    "iso_time",
    "sample_data",
    "sample_event",
    "signed_request",
]

#: The ``apiVersion`` stamped on generated envelopes.
API_VERSION = "2026-05-25"

_ENVELOPE_KEYS = {
    "id": "id",
    "timestamp": "timestamp",
    "organization_id": "organizationId",
    "organizationId": "organizationId",
    "mode": "mode",
    "api_version": "apiVersion",
    "apiVersion": "apiVersion",
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def iso_time(moment: datetime) -> str:
    """The ISO 8601 form Commet uses: UTC, milliseconds, ``Z`` suffix."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common() -> dict[str, Any]:
    return {
        "subscriptionId": _new_id("sub"),
        "customerId": "user_123",
        "externalId": "user_123",
    }


def _subscription_created(now: datetime) -> dict[str, Any]:
    return {
        **_common(),
        "publicId": "SUB-" + secrets.token_hex(3).upper(),
        "planId": "plan_pro",
        "planName": "Pro",
        "status": "pending_payment",
        "startDate": iso_time(now),
        "name": "Pro plan",
    }


def _subscription_activated(now: datetime) -> dict[str, Any]:
    return {
        **_common(),
        "publicId": "SUB-" + secrets.token_hex(3).upper(),
        "status": "active",
        "currentPeriodStart": iso_time(now),
        "currentPeriodEnd": iso_time(now + timedelta(days=30)),
        "name": "Pro plan",
        "invoiceId": _new_id("inv"),
        "invoiceNumber": "INV-0001",
        "invoiceTotal": 2900,
        "invoiceCurrency": "USD",
    }


def _subscription_canceled(now: datetime) -> dict[str, Any]:
    return {
        **_common(),
        "status": "canceled",
        "canceledAt": iso_time(now),
        "cancelReason": "customer_request",
        "endDate": iso_time(now + timedelta(days=12)),
    }


def _subscription_updated(now: datetime) -> dict[str, Any]:
    return {
        **_common(),
        "status": "active",
        "canceledAt": None,
        "cancelReason": None,
        "endDate": iso_time(now + timedelta(days=30)),
    }


def _subscription_plan_changed(now: datetime) -> dict[str, Any]:
    return {
        **_common(),
        "previousPlan": {"id": "plan_starter", "name": "Starter"},
        "currentPlan": {"id": "plan_pro", "name": "Pro"},
        "billingInterval": "monthly",
        "credit": 600,
        "charge": 2900,
        "totalCharged": 2300,
    }


def _payment_received(now: datetime) -> dict[str, Any]:
    common = _common()
    return {
        "invoiceId": _new_id("inv"),
        "invoiceNumber": "INV-0002",
        "invoiceTotal": 2900,
        "customerId": common["customerId"],
        "subscriptionId": common["subscriptionId"],
        "paymentTransactionId": _new_id("txn"),
        "grossAmount": 2900,
        "currency": "USD",
        "orgNetAmount": 2784,
        "customerEmail": "ada@example.com",
        "paidAt": iso_time(now),
    }


def _payment_failed(now: datetime) -> dict[str, Any]:
    common = _common()
    return {
        "invoiceId": _new_id("inv"),
        "invoiceNumber": "INV-0002",
        "customerId": common["customerId"],
        "subscriptionId": common["subscriptionId"],
        "failureCode": "card_declined",
        "failureMessage": "Your card was declined.",
    }


def _invoice_created(now: datetime) -> dict[str, Any]:
    common = _common()
    return {
        "invoiceId": _new_id("inv"),
        "invoiceNumber": "INV-0002",
        "invoiceStatus": "open",
        "periodStart": iso_time(now),
        "periodEnd": iso_time(now + timedelta(days=30)),
        "issueDate": iso_time(now),
        "dueDate": iso_time(now + timedelta(days=7)),
        "currency": "USD",
        "subtotal": 2900,
        "total": 2900,
        "customerId": common["customerId"],
        "subscriptionId": common["subscriptionId"],
    }


_SAMPLES: dict[EventType, Callable[[datetime], dict[str, Any]]] = {
    EventType.SUBSCRIPTION_CREATED: _subscription_created,
    EventType.SUBSCRIPTION_ACTIVATED: _subscription_activated,
    EventType.SUBSCRIPTION_CANCELED: _subscription_canceled,
    EventType.SUBSCRIPTION_UPDATED: _subscription_updated,
    EventType.SUBSCRIPTION_PLAN_CHANGED: _subscription_plan_changed,
    EventType.PAYMENT_RECEIVED: _payment_received,
    EventType.PAYMENT_FAILED: _payment_failed,
    EventType.INVOICE_CREATED: _invoice_created,
}
assert set(_SAMPLES) == {spec.event_type for spec in EVENT_TYPES.values()}, "a sample is missing"

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")


def camel_case(name: str) -> str:
    """`previous_plan` -> `previousPlan`: the wire spelling of a snake_case field name."""
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), name)


def sample_data(event_type: str | EventType, **overrides: Any) -> dict[str, Any]:
    """A realistic ``data`` object for ``event_type``; overrides take snake_case or camelCase.

    An event type this library does not model gets ``{}`` plus the overrides.
    """
    name = event_type.value if isinstance(event_type, EventType) else str(event_type)
    now = datetime.now(timezone.utc)
    spec = EVENT_TYPES.get(name)
    data = _SAMPLES[spec.event_type](now) if spec is not None else {}
    for key, value in overrides.items():
        data[camel_case(key)] = value
    return data


def sample_event(event_type: str | EventType, **overrides: Any) -> dict[str, Any]:
    """A realistic envelope for ``event_type`` (every modelled type, or any other name).

    Envelope keys (``id``, ``timestamp``, ``organization_id``, ``mode``,
    ``api_version``) override the envelope; ``data={...}`` replaces ``data`` wholesale;
    every other keyword overrides one ``data`` field (``invoice_total=5000``).
    """
    name = event_type.value if isinstance(event_type, EventType) else str(event_type)
    envelope_overrides = {}
    data_overrides = {}
    replacement = overrides.pop("data", None)
    for key, value in overrides.items():
        if key in _ENVELOPE_KEYS:
            envelope_overrides[_ENVELOPE_KEYS[key]] = value
        else:
            data_overrides[key] = value
    data = dict(replacement) if replacement is not None else sample_data(name)
    data.update({camel_case(k): v for k, v in data_overrides.items()})
    envelope: dict[str, Any] = {
        "id": _new_id("whev"),
        "event": name,
        "timestamp": iso_time(datetime.now(timezone.utc)),
        "organizationId": "org_demo",
        "mode": "sandbox",
        "apiVersion": API_VERSION,
        "data": data,
    }
    for key, value in envelope_overrides.items():
        if isinstance(value, datetime):
            value = iso_time(value)
        envelope[key] = value
    return envelope


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
        "X-Commet-Signature": sign(body, secret),
    }
    if isinstance(envelope, Mapping):
        if isinstance(envelope.get("event"), str):
            out["X-Commet-Event"] = envelope["event"]
        if isinstance(envelope.get("timestamp"), str):
            out["X-Commet-Timestamp"] = envelope["timestamp"]
        if isinstance(envelope.get("id"), str):
            out["X-Commet-Event-Id"] = envelope["id"]
    if headers:
        out.update(headers)
    return body, out


def _try_decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
