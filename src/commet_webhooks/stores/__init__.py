"""Idempotency stores: one claim / complete / release protocol, four backends.

``MemoryStore`` and ``SQLiteStore`` are importable from here; the network stores live
in ``commet_webhooks.stores.redis`` and ``commet_webhooks.stores.postgres`` so that
their client libraries are imported only when used.
"""

from __future__ import annotations

from ._base import DEFAULT_LEASE_SECONDS, DEFAULT_RETENTION_SECONDS, Claim, IdempotencyStore
from .memory import MemoryStore

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_RETENTION_SECONDS",
    "Claim",
    "IdempotencyStore",
    "MemoryStore",
]
