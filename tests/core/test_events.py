"""Typed events: the registry, both API generations, tolerance and strictness."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import commet_webhooks
from commet_webhooks import (
    EventType,
    InvoiceCreated,
    PayloadError,
    PaymentFailed,
    PaymentReceived,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionUpdated,
    UnknownEvent,
    WebhookEvent,
    parse_event,
)
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event

SEED_CLASSES = {
    "subscription.created": SubscriptionCreated,
    "subscription.activated": SubscriptionActivated,
    "subscription.canceled": SubscriptionCanceled,
    "subscription.updated": SubscriptionUpdated,
    "subscription.plan_changed": SubscriptionPlanChanged,
    "payment.received": PaymentReceived,
    "payment.failed": PaymentFailed,
    "invoice.created": InvoiceCreated,
}


def class_name(wire_name: str) -> str:
    """SPEC's naming rule: CamelCase of the wire name split on '.' and '_'."""
    return "".join(part.capitalize() for part in wire_name.replace(".", "_").split("_"))


EXPECTED_CLASSES = {name: getattr(commet_webhooks, class_name(name)) for name in EVENT_TYPES}
assert all(EXPECTED_CLASSES[name] is cls for name, cls in SEED_CLASSES.items())

# The older API generation: no id/mode/apiVersion, publicId and externalId present.
LEGACY_ACTIVATED = {
    "event": "subscription.activated",
    "timestamp": "2025-03-01T12:00:00.000Z",
    "organizationId": "org_1",
    "data": {
        "subscriptionId": "sub_1",
        "publicId": "SUB-1",
        "customerId": "cus_1",
        "externalId": "user_123",
        "status": "active",
        "currentPeriodStart": "2025-03-01T12:00:00.000Z",
        "currentPeriodEnd": "2025-04-01T12:00:00.000Z",
        "name": "Pro",
        "invoiceId": "inv_1",
        "invoiceNumber": "INV-0001",
        "invoiceTotal": 2900,
        "invoiceCurrency": "USD",
    },
}

# The current generation: id/mode/apiVersion added, publicId/externalId dropped, new fields.
CURRENT_ACTIVATED = {
    "id": "whev_abc",
    "event": "subscription.activated",
    "timestamp": "2026-05-25T08:30:00+02:00",
    "organizationId": "org_1",
    "mode": "live",
    "apiVersion": "2026-05-25",
    "webhookVersion": 3,
    "data": {
        "subscriptionId": "sub_1",
        "customerId": "cus_1",
        "status": "active",
        "provider": "stripe",
        "invoiceId": "inv_1",
        "invoiceNumber": "INV-0001",
        "invoiceTotal": 2900,
        "invoiceCurrency": "USD",
        "metadata": {"seats": 3},
    },
}


def body_of(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_event_type_enum_matches_registry_and_is_str() -> None:
    assert [t.value for t in EventType] == list(EVENT_TYPES)
    assert EventType.PAYMENT_FAILED == "payment.failed"
    assert isinstance(EventType.PAYMENT_FAILED, str)
    assert EventType.PAYMENT_FAILED.handler_keyword == "on_payment_failed"


@pytest.mark.parametrize("name", list(EVENT_TYPES))
def test_every_sample_parses_to_its_class(name: str) -> None:
    event = parse_event(body_of(sample_event(name)))
    assert type(event) is EXPECTED_CLASSES[name]
    assert EVENT_TYPES[name].event_class is EXPECTED_CLASSES[name]
    assert event.event == name
    assert isinstance(event, WebhookEvent)
    assert event.timestamp.tzinfo is not None
    assert event.mode == "sandbox" and event.id and event.id.startswith("whev_")


def test_legacy_generation_parses() -> None:
    event = parse_event(body_of(LEGACY_ACTIVATED))
    assert isinstance(event, SubscriptionActivated)
    assert event.id is None and event.mode is None and event.api_version is None
    assert event.organization_id == "org_1"
    assert event.data.public_id == "SUB-1" and event.data.external_id == "user_123"
    assert event.data.invoice_total == 2900 and isinstance(event.data.invoice_total, int)
    assert event.data.current_period_end == datetime(2025, 4, 1, 12, tzinfo=timezone.utc)


def test_current_generation_parses_and_tolerates_new_keys() -> None:
    event = parse_event(body_of(CURRENT_ACTIVATED))
    assert isinstance(event, SubscriptionActivated)
    assert event.id == "whev_abc" and event.mode == "live" and event.api_version == "2026-05-25"
    assert event.data.public_id is None and event.data.external_id is None
    assert event.timestamp.utcoffset() is not None
    assert event.timestamp == datetime(2026, 5, 25, 6, 30, tzinfo=timezone.utc)


def test_raw_is_the_envelope_as_received() -> None:
    event = parse_event(body_of(CURRENT_ACTIVATED))
    assert event.raw == CURRENT_ACTIVATED
    assert event.raw is event.raw  # decoded once


def test_raw_of_an_event_built_in_code() -> None:
    event = parse_event(body_of(LEGACY_ACTIVATED))
    built = SubscriptionActivated(
        timestamp=event.timestamp, organization_id="org_1", data=event.data
    )
    assert built.raw["event"] == "subscription.activated"
    assert built.raw["data"]["invoiceTotal"] == 2900


def test_naive_times_become_utc() -> None:
    payload = sample_event("invoice.created", due_date="2026-02-01T00:00:00")
    payload["timestamp"] = "2026-01-01T00:00:00"
    event = parse_event(body_of(payload))
    assert isinstance(event, InvoiceCreated)
    assert event.timestamp.tzinfo is timezone.utc
    assert event.data.due_date == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_nested_plan_refs_and_optional_amounts() -> None:
    event = parse_event(body_of(sample_event("subscription.plan_changed", credit=None)))
    assert isinstance(event, SubscriptionPlanChanged)
    example = EVENT_TYPES["subscription.plan_changed"].example
    assert event.data.previous_plan.name == example["previousPlan"]["name"]
    assert event.data.current_plan.id == example["currentPlan"]["id"]
    assert event.data.credit is None and event.data.total_charged == example["totalCharged"]


def test_unknown_event_keeps_raw_data_and_extra_keys() -> None:
    payload = {
        "event": "loyalty.points_awarded",
        "timestamp": "2026-01-01T00:00:00Z",
        "organizationId": "org_1",
        "somethingNew": [1, 2],
        "data": {"awardedAt": "2026-01-03T00:00:00Z", "nested": {"x": 1}},
    }
    event = parse_event(body_of(payload))
    assert isinstance(event, UnknownEvent)
    assert event.event == "loyalty.points_awarded"
    assert event.data == payload["data"]
    assert event.raw == payload


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["data"].__setitem__("invoiceTotal", "2900"), "$.data.invoiceTotal"),
        (lambda p: p["data"].pop("invoiceId"), "invoiceId"),
        (lambda p: p["data"].__setitem__("currentPeriodEnd", "soon"), "$.data.currentPeriodEnd"),
        (lambda p: p.__setitem__("timestamp", 5), "$.timestamp"),
        (lambda p: p.pop("organizationId"), "organizationId"),
        (lambda p: p.__setitem__("data", []), "$.data"),
    ],
)
def test_wrong_type_or_missing_field_names_the_field(mutate: object, field: str) -> None:
    payload = json.loads(json.dumps(LEGACY_ACTIVATED))
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(PayloadError) as info:
        parse_event(body_of(payload))
    assert field in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[1]",
        b'"event"',
        b"42",
        b"{",
        b"\xff\xfe",
        b'{"event": "payment.failed"}',
        b'{"event": 7, "timestamp": "2026-01-01T00:00:00Z", "organizationId": "o", "data": {}}',
        b'{"timestamp": "2026-01-01T00:00:00Z", "organizationId": "o", "data": {}}',
    ],
)
def test_non_envelopes_are_payload_errors(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_event(body)


def test_public_names_are_exported() -> None:
    for name in commet_webhooks.__all__:
        if name in {
            "ApiResponse",
            "AsyncCommet",
            "Commet",
            "CommetAPIError",
            "CommetValidationError",
            "SQLiteStore",
        }:
            continue  # lazy: covered by the client and store tests
        assert hasattr(commet_webhooks, name), name


def test_deep_nesting_is_a_clear_payload_error() -> None:
    deep = b'{"k":' * 5000 + b"1" + b"}" * 5000
    for name in ("trial.x", "payment.failed"):
        head = b'{"event":"' + name.encode() + b'","timestamp":"2026-01-01T00:00:00Z",'
        body = head + b'"organizationId":"o","data":{"nested":' + deep + b"}}"
        with pytest.raises(PayloadError, match="nested too deeply"):
            parse_event(body)
