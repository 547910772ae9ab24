"""Events, their deliveries (one per endpoint) and every attempt made for them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec

from ..._wire import iso_time, new_id
from .database import Database, marks
from .endpoints import Endpoint
from .times import now_iso

__all__ = ["DELIVERY_STATUSES", "Attempt", "Delivery", "EventRecord", "EventStore"]

#: Every status a delivery can have.
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "canceled")


@dataclass(frozen=True)
class Attempt:
    id: int
    attempted_at: str
    manual: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    response: str | None
    note: str | None = None


@dataclass(frozen=True)
class Delivery:
    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    status: str
    auto_attempts: int
    attempts: list[Attempt]
    next_attempt_at: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class EventRecord:
    id: str
    type: str
    timestamp: str
    payload: dict[str, Any]
    deliveries: list[Delivery]


class EventStore:
    """The ``events``, ``deliveries`` and ``attempts`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        envelope: Mapping[str, Any],
        endpoints: Sequence[Endpoint],
        *,
        manual: bool = False,
    ) -> list[str]:
        """Store an event and queue one delivery per endpoint that subscribes to it.

        The envelope is serialised once; an endpoint pinned to another API version
        gets its own copy with that ``apiVersion``. Every attempt of a delivery sends
        the same bytes. ``manual`` queues one attempt that never schedules retries
        (a test send). Returns the ids of the deliveries queued.
        """
        event_type = str(envelope["event"])
        body = msgspec.json.encode(envelope)
        now = time.time()
        stamp = now_iso()
        queued: list[str] = []
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO events (id, type, timestamp, body) VALUES (?, ?, ?, ?)",
                (envelope["id"], event_type, envelope["timestamp"], body),
            )
            for endpoint in endpoints:
                if not endpoint.enabled or not endpoint.wants(event_type):
                    continue
                own = None
                pinned = endpoint.api_version
                if pinned and pinned != envelope.get("apiVersion"):
                    own = msgspec.json.encode({**envelope, "apiVersion": pinned})
                delivery_id = new_id("dlv")
                conn.execute(
                    "INSERT INTO deliveries (id, event_id, endpoint_id, url, status, created_at, "
                    "updated_at, body) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (delivery_id, envelope["id"], endpoint.id, endpoint.url, stamp, stamp, own),
                )
                conn.execute(
                    "INSERT INTO outbox (delivery_id, due_at, manual) VALUES (?, ?, ?)",
                    (delivery_id, now, int(manual)),
                )
                queued.append(delivery_id)
        return queued

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _filter(
        event_type: str | None, status: str | None, families: Sequence[str] | None = None
    ) -> tuple[str, list[object]]:
        where: list[str] = []
        params: list[object] = []
        if event_type:
            where.append("type = ?")
            params.append(event_type)
        if families:
            where.append("(" + " OR ".join("type LIKE ?" for _ in families) + ")")
            params.extend(f"{family}.%" for family in families)
        if status:
            where.append("id IN (SELECT event_id FROM deliveries WHERE status = ?)")
            params.append(status)
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def count(
        self, *, event_type: str | None = None, status: str | None = None, family: str | None = None
    ) -> int:
        where, params = self._filter(event_type, status, [family] if family else None)
        row = self.db.conn.execute("SELECT COUNT(*) FROM events" + where, params).fetchone()  # noqa: S608
        return int(row[0])

    def recent(
        self,
        *,
        event_type: str | None = None,
        status: str | None = None,
        family: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[EventRecord]:
        """Events newest first, each with its deliveries and their attempts."""
        where, params = self._filter(event_type, status, [family] if family else None)
        rows = self.db.conn.execute(
            "SELECT * FROM events" + where + " ORDER BY seq DESC LIMIT ? OFFSET ?",  # noqa: S608
            (*params, limit, offset),
        ).fetchall()
        by_event: dict[str, list[Delivery]] = {}
        for delivery in self.deliveries(event_ids=[row["id"] for row in rows], limit=None):
            by_event.setdefault(delivery.event_id, []).append(delivery)
        return [
            EventRecord(
                id=row["id"],
                type=row["type"],
                timestamp=row["timestamp"],
                payload=msgspec.json.decode(row["body"]),
                deliveries=by_event.get(row["id"], []),
            )
            for row in rows
        ]

    def bodies(
        self, *, event_type: str | None, family: str | None, limit: int
    ) -> list[tuple[str, str, str, bytes]]:
        """(id, type, timestamp, exact body) of events, oldest first (fixtures)."""
        where, params = self._filter(event_type, None, [family] if family else None)
        rows = self.db.conn.execute(
            "SELECT * FROM (SELECT id, type, timestamp, body, seq FROM events"  # noqa: S608
            + where
            + " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (*params, limit),
        ).fetchall()
        return [(r["id"], r["type"], r["timestamp"], bytes(r["body"])) for r in rows]

    def types(self) -> list[str]:
        rows = self.db.conn.execute("SELECT DISTINCT type FROM events ORDER BY type")
        return [row["type"] for row in rows]

    def type_counts(self) -> dict[str, int]:
        rows = self.db.conn.execute("SELECT type, COUNT(*) AS n FROM events GROUP BY type")
        return {row["type"]: int(row["n"]) for row in rows}

    def deliveries(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        delivery_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[Delivery]:
        """Deliveries newest first, each with its attempts (oldest first) and next due time."""
        where: list[str] = []
        params: list[object] = []
        if event_ids is not None:
            if not event_ids:
                return []
            where.append(f"d.event_id IN ({marks(event_ids)})")
            params.extend(event_ids)
        for column, value in (
            ("d.id", delivery_id),
            ("d.endpoint_id", endpoint_id),
            ("d.status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (
            "SELECT d.*, e.type AS event_type, "
            "(SELECT MIN(due_at) FROM outbox o WHERE o.delivery_id = d.id) AS next_due "
            "FROM deliveries d JOIN events e ON e.id = d.event_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.seq DESC, d.rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.db.conn.execute(sql, params).fetchall()
        attempts = self._attempts_for([row["id"] for row in rows])
        return [_delivery(row, attempts.get(row["id"], [])) for row in rows]

    def delivery(self, delivery_id: str) -> Delivery | None:
        found = self.deliveries(delivery_id=delivery_id, limit=1)
        return found[0] if found else None

    def _attempts_for(self, delivery_ids: Sequence[str]) -> dict[str, list[Attempt]]:
        result: dict[str, list[Attempt]] = {}
        for start in range(0, len(delivery_ids), 500):  # under SQLite's parameter limit
            chunk = delivery_ids[start : start + 500]
            rows = self.db.conn.execute(
                f"SELECT * FROM attempts WHERE delivery_id IN ({marks(chunk)}) ORDER BY id",  # noqa: S608
                chunk,
            ).fetchall()
            for row in rows:
                result.setdefault(row["delivery_id"], []).append(
                    Attempt(
                        id=row["id"],
                        attempted_at=row["attempted_at"],
                        manual=bool(row["manual"]),
                        status_code=row["status_code"],
                        latency_ms=row["latency_ms"],
                        error=row["error"],
                        response=row["response"],
                        note=row["note"],
                    )
                )
        return result


def _delivery(row: sqlite3.Row, attempts: list[Attempt]) -> Delivery:
    next_due = row["next_due"]
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        status=row["status"],
        auto_attempts=row["auto_attempts"],
        attempts=attempts,
        next_attempt_at=None
        if next_due is None
        else iso_time(datetime.fromtimestamp(next_due, timezone.utc)),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
