"""A local Commet: the platform's v1 API, a simulated billing lifecycle with a test clock,
signed delivery under the platform's policy, and a dashboard.

>>> from commet_webhooks.emulator import run
>>> run(port=8787, db_path="commet-emulator.db")   # prints the generated ck_ key

or, inside your own server or tests, ``create_app(db_path=..., api_key=...)`` returns
the ASGI app. State and the delivery outbox live in one SQLite file, so a restarted
emulator resumes pending deliveries. The dashboard at ``/`` is meant for loopback.
"""

from __future__ import annotations

from .app import create_app, run
from .plans import DEFAULT_PLANS, PlanCatalogError
from .policy import AUTO_DISABLE_AFTER, DEFAULT_RETRY_SCHEDULE, DELIVERY_TIMEOUT, DeliveryPolicy

__all__ = [
    "AUTO_DISABLE_AFTER",
    "DEFAULT_PLANS",
    "DEFAULT_RETRY_SCHEDULE",
    "DELIVERY_TIMEOUT",
    "DeliveryPolicy",
    "PlanCatalogError",
    "create_app",
    "run",
]
