"""A local Commet: endpoints, billing simulation, signed delivery with retries, dashboard.

>>> from commet_webhooks.emulator import run
>>> run(port=8787, db_path="commet-emulator.db")   # prints the generated ck_ key

or, inside your own server or tests, ``create_app(db_path=..., api_key=...)`` returns
the ASGI app. State and the delivery outbox live in one SQLite file, so a restarted
emulator resumes pending deliveries. The dashboard at ``/`` is meant for loopback.
"""

from __future__ import annotations

from .app import create_app, run
from .delivery import DEFAULT_RETRY_SCHEDULE
from .plans import DEFAULT_PLANS, PlanCatalogError

__all__ = ["DEFAULT_PLANS", "DEFAULT_RETRY_SCHEDULE", "PlanCatalogError", "create_app", "run"]
