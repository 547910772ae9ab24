"""commet-webhooks: receive, verify and route Commet billing webhooks.

>>> from commet_webhooks import Webhooks
>>> webhooks = Webhooks(webhook_secret="whsec_...", on_subscription_activated=grant)
>>> response = await webhooks.handle(body, headers)
"""

from __future__ import annotations

import logging

from ._parsing import construct_event, parse_event, verify_and_parse
from ._signing import sign, verify
from .dispatch import WebhookResponse, Webhooks
from .errors import PayloadError, SignatureVerificationError, StoreUnavailableError, WebhookError
from .events import (
    EventType,
    InvoiceCreated,
    PaymentFailed,
    PaymentReceived,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionUpdated,
    UnknownEvent,
    WebhookEvent,
)
from .stores import IdempotencyStore, MemoryStore

__version__ = "0.1.0"

# A library logs; the application decides where logs go.
logging.getLogger("commet_webhooks").addHandler(logging.NullHandler())

__all__ = [
    "EventType",
    "IdempotencyStore",
    "InvoiceCreated",
    "MemoryStore",
    "PayloadError",
    "PaymentFailed",
    "PaymentReceived",
    "SignatureVerificationError",
    "StoreUnavailableError",
    "SubscriptionActivated",
    "SubscriptionCanceled",
    "SubscriptionCreated",
    "SubscriptionPlanChanged",
    "SubscriptionUpdated",
    "UnknownEvent",
    "WebhookError",
    "WebhookEvent",
    "WebhookResponse",
    "Webhooks",
    "__version__",
    "construct_event",
    "parse_event",
    "sign",
    "verify",
    "verify_and_parse",
]
