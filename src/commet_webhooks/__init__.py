"""commet-webhooks: receive, verify and route Commet billing webhooks.

>>> from commet_webhooks import Webhooks
>>> webhooks = Webhooks(webhook_secret="whsec_...", on_subscription_activated=grant)
>>> response = await webhooks.handle(body, headers)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import _event_types
from ._envelope import UnknownEvent, WebhookEvent
from ._event_types import *  # noqa: F403 - every event class of the registry, generated
from ._observe import DeliveryRecord, Observer
from ._offload import Offload, OffloadedDelivery
from ._parsing import construct_event, parse_event, verify_and_parse
from ._responses import Outcome
from ._router import Router
from ._signing import sign, verify
from .dispatch import WebhookResponse, Webhooks
from .errors import (
    EventSchemaError,
    LeaseLostError,
    PayloadError,
    SignatureVerificationError,
    StoreUnavailableError,
    WebhookError,
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
    "DeliveryRecord",
    "EventSchemaError",
    "IdempotencyStore",
    "LeaseLostError",
    "MemoryStore",
    "Observer",
    "Offload",
    "OffloadedDelivery",
    "Outcome",
    "PayloadError",
    "Router",
    "SQLiteStore",
    "SignatureVerificationError",
    "StoreUnavailableError",
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
# The event classes (all of Commet's event types), their data structs and EventType.
__all__ += _event_types.__all__
