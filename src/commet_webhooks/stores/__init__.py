"""Idempotency stores: one claim / complete / release protocol, four backends.

``MemoryStore`` and ``SQLiteStore`` are importable from here; the network stores live
in ``commet_webhooks.stores.redis`` and ``commet_webhooks.stores.postgres`` so that
their client libraries are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import DEFAULT_LEASE_SECONDS, DEFAULT_RETENTION_SECONDS, Claim, IdempotencyStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from .sqlite import SQLiteStore


def __getattr__(name: str) -> object:
    # Lazy: importing sqlite3 costs every ``import commet_webhooks`` a few milliseconds.
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_RETENTION_SECONDS",
    "Claim",
    "IdempotencyStore",
    "MemoryStore",
    "SQLiteStore",
]
