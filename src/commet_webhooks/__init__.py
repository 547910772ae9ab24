"""commet-webhooks: receive, verify and route Commet billing webhooks.

>>> from commet_webhooks import Webhooks
>>> webhooks = Webhooks(webhook_secret="whsec_...", on_subscription_activated=grant)
>>> response = await webhooks.handle(body, headers)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .client import ApiResponse, AsyncCommet, Commet, CommetAPIError, CommetValidationError
    from .stores.sqlite import SQLiteStore

# Names whose modules pull optional dependencies (httpx) or are rarely needed are
# imported on first access, so ``import commet_webhooks`` stays light.
_LAZY = {
    "ApiResponse": ".client",
    "AsyncCommet": ".client",
    "Commet": ".client",
    "CommetAPIError": ".client",
    "CommetValidationError": ".client",
    "SQLiteStore": ".stores.sqlite",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'commet_webhooks' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

# A library logs; the application decides where logs go.
logging.getLogger("commet_webhooks").addHandler(logging.NullHandler())

__all__ = [
    "ApiResponse",
    "AsyncCommet",
    "Commet",
    "CommetAPIError",
    "CommetValidationError",
    "EventType",
    "IdempotencyStore",
    "InvoiceCreated",
    "MemoryStore",
    "PayloadError",
    "PaymentFailed",
    "PaymentReceived",
    "SQLiteStore",
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
