"""Typed views of the state API's ``data`` payloads.

Wire names are camelCase, attributes are snake_case. Unknown keys are ignored and
almost every field is optional, so a richer answer from a newer API version never
breaks an access decision. Naive times are read as UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .._wire import TimedWireStruct
from ..events import ACCESS_STATUSES

__all__ = [
    "ACCESS_STATUSES",
    "ActiveSubscription",
    "CurrentPeriod",
    "FeatureAccess",
    "FeatureCheck",
    "Plan",
    "SubscriptionFeature",
]


class Plan(TimedWireStruct):
    """The plan a subscription is on. ``base_price`` is in cents."""

    id: str
    name: str | None = None
    base_price: int | None = None
    billing_interval: str | None = None


class CurrentPeriod(TimedWireStruct):
    """The billing period in progress."""

    _time_fields = ("start", "end")
    start: datetime | None = None
    end: datetime | None = None
    days_remaining: int | None = None


class SubscriptionFeature(TimedWireStruct):
    """A feature included in the subscription's plan."""

    code: str
    name: str | None = None
    type: str | None = None
    enabled: bool | None = None
    usage: Any = None


class ActiveSubscription(TimedWireStruct):
    """A customer's active subscription, as answered by ``GET /api/subscriptions/active``."""

    _time_fields = (
        "trial_ends_at",
        "start_date",
        "end_date",
        "next_billing_date",
        "created_at",
        "updated_at",
    )
    id: str
    status: str
    customer_id: str | None = None
    plan: Plan | None = None
    name: str | None = None
    description: str | None = None
    trial_ends_at: datetime | None = None
    current_period: CurrentPeriod | None = None
    features: list[SubscriptionFeature] = msgspec.field(default_factory=list)
    start_date: datetime | None = None
    end_date: datetime | None = None
    billing_day_of_month: int | None = None
    next_billing_date: datetime | None = None
    checkout_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """True when the status grants access: ``active`` or ``trialing``."""
        return self.status in ACCESS_STATUSES

    def feature(self, code: str) -> SubscriptionFeature | None:
        """The plan feature with this code, or None."""
        return next((f for f in self.features if f.code == code), None)


class FeatureAccess(TimedWireStruct):
    """A customer's access to one feature, as answered by ``GET /api/features/{code}``.

    ``type`` is ``boolean``, ``metered`` or ``seats``; the usage fields apply to the
    last two.
    """

    code: str
    allowed: bool
    name: str | None = None
    type: str | None = None
    enabled: bool | None = None
    current: int | float | None = None
    included: int | float | None = None
    remaining: int | float | None = None
    overage: int | float | None = None
    overage_unit_price: int | float | None = None
    unlimited: bool | None = None
    overage_enabled: bool | None = None


class FeatureCheck(TimedWireStruct):
    """The answer to "may this customer use this feature?"."""

    allowed: bool
