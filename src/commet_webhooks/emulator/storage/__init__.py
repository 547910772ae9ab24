"""The emulator's storage, one module per entity over one migrated SQLite file.

``Storage(path)`` opens the file and gathers the stores; nothing outside this
package writes SQL.
"""

from __future__ import annotations

from .billing import BillingStores
from .control import ClockStore, Counters, IdempotencyStore
from .database import Database
from .endpoints import Endpoint, EndpointStore
from .events import DELIVERY_STATUSES, Attempt, Delivery, EventRecord, EventStore
from .outbox import AttemptOutcome, Job, Outbox

__all__ = [
    "DELIVERY_STATUSES",
    "Attempt",
    "AttemptOutcome",
    "Delivery",
    "Endpoint",
    "EventRecord",
    "Job",
    "Storage",
]


class Storage:
    """Every store of the emulator over one :class:`Database`."""

    def __init__(self, path: str) -> None:
        self.db = Database(path)
        self.endpoints = EndpointStore(self.db)
        self.events = EventStore(self.db)
        self.outbox = Outbox(self.db)
        self.billing = BillingStores(self.db)
        self.clock = ClockStore(self.db)
        self.idempotency = IdempotencyStore(self.db)
        self.counters = Counters(self.db)

    def close(self) -> None:
        self.db.close()
