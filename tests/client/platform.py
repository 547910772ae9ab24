"""Payloads shaped like the platform's ``/api/v1`` answers (API version 2026-08-27).

Written from the platform's published schemas, field by field, so tests decode what
the platform really sends: floats where it says ``number``, nested ``consumption`` /
``usage``, ``object`` and ``livemode`` on every object, and an unknown field here and
there.
"""

from __future__ import annotations

from typing import Any

PERIOD = {"start": "2026-11-01T00:00:00.000Z", "end": "2026-12-01T00:00:00.000Z"}


def subscription(customer_id: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    """A customer's subscription as ``GET /api/v1/subscriptions/active`` answers it."""
    return {
        "id": f"sub_{customer_id}",
        "customerId": customer_id,
        "plan": {"id": "plan_pro", "name": "Pro", "basePrice": 49.5},
        "name": "Pro monthly",
        "description": None,
        "status": status,
        "billingInterval": "monthly",
        "trialEndsAt": None,
        "currentPeriod": {**PERIOD, "daysRemaining": 3.75},
        "cancellation": None,
        "cancelAtPeriodEnd": False,
        "scheduledPlanChange": None,
        "startDate": "2026-01-01T00:00:00.000Z",
        "endDate": None,
        "billingDayOfMonth": 1,
        "nextBillingDate": "2026-12-01T00:00:00.000Z",
        "checkoutUrl": None,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-11-01T00:00:00",
        "offerApplications": [],
        "pause": (
            {
                "status": "active",
                "mode": "immediate",
                "requestedAt": "2026-11-20T00:00:00.000Z",
                "effectiveAt": "2026-11-20T00:00:00.000Z",
                "resumeAt": None,
            }
            if status == "paused"
            else None
        ),
        "consumptionModel": "metered",
        "features": [
            {
                "code": "advanced_analytics",
                "name": "Advanced analytics",
                "type": "boolean",
                "enabled": True,
            },
            {
                "code": "api_calls",
                "name": "API calls",
                "type": "usage",
                "usage": {"current": 120.5, "included": 1000, "overageQuantity": 0},
            },
            {
                "code": "seats",
                "name": "Seats",
                "type": "seats",
                "usage": {"current": 3, "included": 5, "overageQuantity": 0, "unlimited": False},
            },
        ],
        "credits": None,
        "balance": None,
        "priceId": "price_pro_monthly",
        "object": "subscription",
        "livemode": False,
        "futureField": {"anything": [1, 2, 3]},
        **extra,
    }


def _access(code: str, allowed: bool, type_: str, **rest: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name": code.replace("_", " ").title(),
        "unitName": None,
        "allowed": allowed,
        "type": type_,
        **rest,
        "object": "feature_access",
        "livemode": False,
    }


def boolean_access(code: str, allowed: bool = True) -> dict[str, Any]:
    """``FeatureAccess`` of ``type: boolean``."""
    return _access(code, allowed, "boolean", enabled=allowed)


def usage_access(code: str, model: str = "metered", allowed: bool = True) -> dict[str, Any]:
    """``FeatureAccess`` of ``type: usage`` with a ``consumption`` of the given model."""
    consumption: dict[str, Any]
    if model == "metered":
        consumption = {
            "model": "metered",
            "period": PERIOD,
            "unitsUsed": 120.5,
            "includedUnits": 1000,
            "remainingUnits": 879.5,
            "unlimited": False,
            "overage": {
                "enabled": True,
                "units": 0,
                "unitPrice": {"amount": 20, "currency": "usd", "scale": 10000},
            },
        }
    elif model == "credits":
        consumption = {
            "model": "credits",
            "period": PERIOD,
            "unitsUsed": 40,
            "creditsPerUnit": 5,
            "creditsConsumed": 200,
            "availableUnits": 400,
        }
    else:
        consumption = {
            "model": "balance",
            "period": PERIOD,
            "unitsUsed": 10,
            "spent": {"amount": 1250, "currency": "usd"},
            "availableUnits": 30,
            "unitPrice": {"amount": 1250000, "currency": "usd", "scale": 10000},
        }
    return _access(code, allowed, "usage", unitName="call", consumption=consumption)


def _units(used: float, included: float, **rest: Any) -> dict[str, Any]:
    return {
        "period": PERIOD,
        "unitsUsed": used,
        "includedUnits": included,
        "remainingUnits": max(included - used, 0),
        "unlimited": False,
        "overage": {"enabled": False, "units": max(used - included, 0)},
        **rest,
    }


def seats_access(code: str, used: float = 3, included: float = 5) -> dict[str, Any]:
    """``FeatureAccess`` of ``type: seats``."""
    return _access(code, used <= included, "seats", usage=_units(used, included))


def quota_access(code: str, used: float = 7, included: float = 10) -> dict[str, Any]:
    """``FeatureAccess`` of ``type: quota`` (with ``billedUnits``)."""
    return _access(code, used <= included, "quota", usage=_units(used, included, billedUnits=8))


def customer(customer_id: str) -> dict[str, Any]:
    """A ``Customer``."""
    return {
        "id": customer_id,
        "externalId": "user_123",
        "fullName": "Ada Lovelace",
        "email": "ada@example.com",
        "taxDocument": None,
        "documentType": None,
        "timezone": "UTC",
        "metadata": {"tier": "gold"},
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-02T00:00:00.000Z",
        "object": "customer",
        "livemode": False,
    }


def usage_event(
    id_: str,
    *,
    feature_code: str = "api_calls",
    customer_id: str = "user_123",
    value: float = 1,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``UsageEvent`` as ``POST /api/v1/usage/events`` answers it."""
    return {
        "id": id_,
        "featureCode": feature_code,
        "value": value,
        "customerId": customer_id,
        "eventId": event_id,
        "ts": "2026-11-28T10:00:00.000Z",
        "createdAt": "2026-11-28T10:00:00.100Z",
        "properties": [{"property": "model", "value": "gpt"}],
        "object": "usage_event",
        "livemode": False,
    }


def error_body(
    code: str,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    """The platform's error answer."""
    return {
        "error": {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "details": details,
            "doc_url": f"https://commet.co/docs/api-reference/errors/{code}.md",
        }
    }
