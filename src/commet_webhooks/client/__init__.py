"""Query Commet's state API: the source of truth for access decisions.

Webhooks drive side effects (emails, provisioning, logs); whether a customer may use
something right now is asked of Commet directly:

>>> from commet_webhooks import Commet
>>> with Commet(api_key="ck_...") as commet:
...     sub = commet.subscriptions.get("user_123")
...     allowed = commet.features.check(code="advanced_analytics", customer_id="user_123")

Needs the ``client`` extra (``pip install commet-webhooks[client]``) for httpx.
"""

from __future__ import annotations

from ._client import (
    AsyncCommet,
    AsyncFeatures,
    AsyncSubscriptions,
    Commet,
    Features,
    Subscriptions,
    WebhookHelpers,
)
from ._core import ENVIRONMENTS, RETRY_STATUSES, ApiResponse
from ._errors import (
    CommetAPIError,
    CommetConnectionError,
    CommetTimeoutError,
    CommetValidationError,
)
from ._models import (
    ACCESS_STATUSES,
    ActiveSubscription,
    CurrentPeriod,
    FeatureAccess,
    FeatureCheck,
    Plan,
    SubscriptionFeature,
)

__all__ = [
    "ACCESS_STATUSES",
    "ENVIRONMENTS",
    "RETRY_STATUSES",
    "ActiveSubscription",
    "ApiResponse",
    "AsyncCommet",
    "AsyncFeatures",
    "AsyncSubscriptions",
    "Commet",
    "CommetAPIError",
    "CommetConnectionError",
    "CommetTimeoutError",
    "CommetValidationError",
    "CurrentPeriod",
    "FeatureAccess",
    "FeatureCheck",
    "Features",
    "Plan",
    "SubscriptionFeature",
    "Subscriptions",
    "WebhookHelpers",
]
