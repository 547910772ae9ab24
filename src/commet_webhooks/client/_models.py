"""The types the client returns.

They are the shared structs of :mod:`commet_webhooks._api_models` (the platform's
``/api/v1`` objects, version ``2026-08-27``), re-exported here, plus
:class:`FeatureCheck`, the client's own answer to "may this customer use this?".
Older names stay as aliases: ``ActiveSubscription`` is :class:`Subscription` and
``Plan`` is the subscription's :class:`SubscriptionPlan`.
"""

from __future__ import annotations

from .._api_models import (
    API_VERSION,
    ApiError,
    BalanceConsumption,
    BooleanFeatureAccess,
    BooleanSubscriptionFeature,
    Consumption,
    CreditsConsumption,
    CurrentPeriod,
    FeatureAccess,
    FeatureAccessList,
    FeatureUsage,
    ListObject,
    MeteredConsumption,
    Money,
    Overage,
    QuotaFeatureAccess,
    QuotaSubscriptionFeature,
    SeatsFeatureAccess,
    SeatsSubscriptionFeature,
    Subscription,
    SubscriptionFeature,
    SubscriptionFeatureUsage,
    SubscriptionPause,
    SubscriptionPlan,
    UnitPrice,
    UnknownConsumption,
    UnknownFeatureAccess,
    UnknownSubscriptionFeature,
    UsageEvent,
    UsageEventConsumption,
    UsageEventProperty,
    UsageFeatureAccess,
    UsageFeatureSubscriptionFeature,
    UsagePeriod,
)
from .._api_models import ApiStruct as _ApiStruct
from ..events import ACCESS_STATUSES

__all__ = [
    "ACCESS_STATUSES",
    "API_VERSION",
    "ActiveSubscription",
    "ApiError",
    "BalanceConsumption",
    "BooleanFeatureAccess",
    "BooleanSubscriptionFeature",
    "Consumption",
    "CreditsConsumption",
    "CurrentPeriod",
    "FeatureAccess",
    "FeatureAccessList",
    "FeatureCheck",
    "FeatureUsage",
    "ListObject",
    "MeteredConsumption",
    "Money",
    "Overage",
    "Plan",
    "QuotaFeatureAccess",
    "QuotaSubscriptionFeature",
    "SeatsFeatureAccess",
    "SeatsSubscriptionFeature",
    "Subscription",
    "SubscriptionFeature",
    "SubscriptionFeatureUsage",
    "SubscriptionPause",
    "SubscriptionPlan",
    "UnitPrice",
    "UnknownConsumption",
    "UnknownFeatureAccess",
    "UnknownSubscriptionFeature",
    "UsageEvent",
    "UsageEventConsumption",
    "UsageEventProperty",
    "UsageFeatureAccess",
    "UsageFeatureSubscriptionFeature",
    "UsagePeriod",
]

#: The seed-era name of :class:`Subscription`.
ActiveSubscription = Subscription

#: The seed-era name of the subscription's plan, :class:`SubscriptionPlan`.
Plan = SubscriptionPlan


class FeatureCheck(_ApiStruct, kw_only=True):
    """The answer to "may this customer use this feature?": only ``allowed`` is read,
    so a check keeps working whatever else the feature access carries."""

    allowed: bool
