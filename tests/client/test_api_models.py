"""The shared state-API structs: platform JSON in, the same JSON out."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest

from commet_webhooks._api_models import (
    ApiError,
    BalanceConsumption,
    BooleanFeatureAccess,
    CreatedWebhook,
    CreditsConsumption,
    Customer,
    CustomerList,
    ErrorResponse,
    FeatureAccess,
    FeatureAccessList,
    MeteredConsumption,
    Plan,
    QuotaFeatureAccess,
    SeatsFeatureAccess,
    Subscription,
    TestClock,
    UnknownConsumption,
    UnknownFeatureAccess,
    UnknownSubscriptionFeature,
    UsageEvent,
    UsageFeatureAccess,
    Webhook,
    from_wire,
    to_wire,
)

from .platform import (
    boolean_access,
    customer,
    quota_access,
    seats_access,
    subscription,
    usage_access,
    usage_event,
)


def _roundtrip(payload: dict[str, Any], type_: Any) -> Any:
    """Decode, encode, decode again: the struct must describe the payload exactly."""
    decoded = from_wire(payload, type_)
    assert from_wire(to_wire(decoded), type_) == decoded
    return decoded


def _same_json(struct: Any, payload: dict[str, Any]) -> None:
    """Encoding gives back exactly the keys the platform sent: required ones even when
    null, optional ones only when present (values are checked by ``_roundtrip``)."""
    wire = msgspec.json.decode(to_wire(struct))
    assert set(wire) == set(payload), set(wire) ^ set(payload)


def test_subscription_roundtrip_and_shape() -> None:
    payload = subscription("user_1", status="paused")
    sub = _roundtrip(payload, Subscription)
    assert isinstance(sub, Subscription)
    assert (sub.status, sub.is_active) == ("paused", False)
    assert sub.plan.base_price == 49.5 and isinstance(sub.plan.base_price, float)
    assert sub.current_period is not None
    assert sub.current_period.days_remaining == 3.75
    assert sub.current_period.end == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert sub.pause is not None and sub.pause.status == "active"
    assert sub.credits is None and sub.balance is None
    assert [f.type for f in sub.features] == ["boolean", "usage", "seats"]
    assert sub.feature("nope") is None
    wire = msgspec.json.decode(to_wire(sub))
    known = {k: v for k, v in payload.items() if k != "futureField"}
    assert set(wire) == set(known)
    assert wire["plan"] == payload["plan"]
    assert wire["currentPeriod"]["daysRemaining"] == 3.75
    assert wire["pause"]["status"] == "active"
    assert "planGrant" not in wire  # optional and absent stays absent


def test_integers_stay_integers() -> None:
    payload = subscription("u")
    payload["plan"]["basePrice"] = 4900
    payload["currentPeriod"]["daysRemaining"] = 4
    sub = from_wire(payload, Subscription)
    assert type(sub.plan.base_price) is int and type(sub.current_period.days_remaining) is int
    assert b'"basePrice":4900' in to_wire(sub)


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        (boolean_access("analytics", True), BooleanFeatureAccess),
        (usage_access("api_calls", "metered"), UsageFeatureAccess),
        (usage_access("ai_tokens", "credits"), UsageFeatureAccess),
        (usage_access("storage", "balance"), UsageFeatureAccess),
        (seats_access("seats"), SeatsFeatureAccess),
        (quota_access("projects"), QuotaFeatureAccess),
    ],
)
def test_feature_access_variants_roundtrip(payload: dict[str, Any], cls: type) -> None:
    access = _roundtrip(payload, FeatureAccess)
    assert type(access) is cls
    assert access.type == payload["type"]
    _same_json(access, payload)
    wire = msgspec.json.decode(to_wire(access))
    assert wire["type"] == payload["type"]
    if "consumption" in payload:
        assert wire["consumption"] == {
            **payload["consumption"],
            "period": wire["consumption"]["period"],
        }


def test_consumption_models() -> None:
    metered = from_wire(usage_access("a", "metered"), FeatureAccess)
    credits = from_wire(usage_access("b", "credits"), FeatureAccess)
    balance = from_wire(usage_access("c", "balance"), FeatureAccess)
    assert isinstance(metered, UsageFeatureAccess)
    assert isinstance(credits, UsageFeatureAccess)
    assert isinstance(balance, UsageFeatureAccess)
    assert isinstance(metered.consumption, MeteredConsumption)
    assert metered.consumption.model == "metered"
    assert metered.consumption.remaining_units == 879.5
    unit_price = metered.consumption.overage.unit_price
    assert not isinstance(unit_price, msgspec.UnsetType) and unit_price.value == 0.002
    assert isinstance(credits.consumption, CreditsConsumption)
    assert credits.consumption.available_units == 400
    assert isinstance(balance.consumption, BalanceConsumption)
    assert balance.consumption.spent.amount == 1250


def test_unknown_discriminators_are_tolerated() -> None:
    odd = {**boolean_access("x", True), "type": "tiered", "tiers": [1, 2]}
    access = from_wire(odd, FeatureAccess)
    assert isinstance(access, UnknownFeatureAccess)
    assert (access.type, access.allowed, access.code) == ("tiered", True, "x")

    usage = usage_access("y", "metered")
    usage["consumption"]["model"] = "prepaid"
    access = from_wire(usage, FeatureAccess)
    assert isinstance(access, UsageFeatureAccess)
    assert isinstance(access.consumption, UnknownConsumption)
    assert access.consumption.model == "prepaid"

    listing = from_wire(
        {"object": "list", "data": [odd, seats_access("s")], "hasMore": False}, FeatureAccessList
    )
    assert [a.type for a in listing.data] == ["tiered", "seats"]

    sub = subscription("u")
    sub["features"].append({"code": "z", "name": "Z", "type": "hologram"})
    decoded = from_wire(sub, Subscription)
    last = decoded.features[-1]
    assert isinstance(last, UnknownSubscriptionFeature) and last.type == "hologram"
    assert from_wire(b"null", Subscription | None) is None


def test_unknown_enum_values_and_fields_are_tolerated() -> None:
    sub = from_wire(
        {**subscription("u"), "status": "frozen", "billingInterval": "biennial", "x": 1},
        Subscription,
    )
    assert (sub.status, sub.billing_interval) == ("frozen", "biennial")


def test_missing_required_field_is_a_validation_error() -> None:
    broken = boolean_access("x", True)
    del broken["allowed"]
    with pytest.raises(msgspec.ValidationError, match="allowed"):
        from_wire(broken, FeatureAccess)


def test_list_objects() -> None:
    page = _roundtrip(
        {"object": "list", "data": [customer("cus_1")], "hasMore": True, "nextCursor": "c2"},
        CustomerList,
    )
    assert page.has_more and page.next_cursor == "c2"
    assert isinstance(page.data[0], Customer)
    last = CustomerList(data=[], has_more=False)
    assert msgspec.json.decode(to_wire(last)) == {"object": "list", "data": [], "hasMore": False}


def test_usage_event_and_customer_roundtrip() -> None:
    event = _roundtrip(usage_event("evt_1", value=2.5), UsageEvent)
    assert event.value == 2.5 and event.properties[0].property == "model"
    _same_json(event, usage_event("evt_1", value=2.5))
    cust = _roundtrip(customer("cus_9"), Customer)
    _same_json(cust, customer("cus_9"))


def test_error_object_keeps_doc_url_snake_case() -> None:
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "validation_error",
            "message": "customerId is required",
            "param": "customerId",
            "details": [{"field": "customerId", "message": "Required"}],
            "doc_url": "https://commet.co/docs/api-reference/errors/validation_error.md",
        }
    }
    decoded = _roundtrip(body, ErrorResponse)
    assert decoded.error.doc_url == body["error"]["doc_url"]
    assert msgspec.json.decode(to_wire(decoded)) == body
    assert msgspec.json.decode(to_wire(ApiError(code="x", message="y")))["type"] == "api_error"


def test_catalog_webhooks_and_test_clock() -> None:
    plan = {
        "id": "plan_pro",
        "name": "Pro",
        "code": "pro",
        "description": None,
        "consumptionModel": "metered",
        "isPublic": True,
        "isDefault": False,
        "isFree": False,
        "blockOnExhaustion": None,
        "sortOrder": 1,
        "planGroupId": None,
        "metadata": None,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:00.000Z",
        "features": [],
        "prices": [],
        "exchangeRates": [{"currency": "eur", "exchangeRate": 0.92}],
        "object": "plan",
        "livemode": False,
    }
    decoded = _roundtrip(plan, Plan)
    _same_json(decoded, plan)
    assert decoded.exchange_rates[0].exchange_rate == 0.92

    hook = CreatedWebhook(id="we_1", url="https://x.test/h", secret_key="whsec_topsecret")
    assert "whsec_topsecret" not in repr(hook)
    assert msgspec.json.decode(to_wire(hook))["secretKey"] == "whsec_topsecret"
    assert isinstance(from_wire(to_wire(hook), Webhook), Webhook)

    clock = _roundtrip(
        {
            "simulatedTime": None,
            "isActive": False,
            "now": "2026-11-28T10:00:00.000Z",
            "latestRun": None,
            "object": "test_clock",
            "livemode": False,
        },
        TestClock,
    )
    assert clock.now.tzinfo is not None
