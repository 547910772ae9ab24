"""The emulator's SQLite database: endpoints, events, deliveries, attempts and the outbox.

Everything the emulator knows lives in one SQLite file in WAL mode, so a killed
emulator loses nothing it has acknowledged: an event, its deliveries and their
first outbox rows are written in the same transaction as the billing change that
emitted them. The billing tables are created here too (one schema) and used by
:mod:`.billing`.

All methods run on the event loop's thread; statements are short and local.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec

from ..testing import iso_time, sample_event

__all__ = [
    "DELIVERY_STATUSES",
    "ORGANIZATION_ID",
    "AttemptOutcome",
    "Database",
    "Job",
    "new_id",
    "now_iso",
]

#: The ``organizationId`` stamped on every envelope the emulator sends.
ORGANIZATION_ID = "org_emulator"
#: Every status a delivery can have.
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "canceled")
#: Bytes of a receiver's answer kept in the attempt log.
RESPONSE_EXCERPT_BYTES = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1, consecutive_failures INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT, email TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, public_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL, status TEXT NOT NULL, name TEXT, start_date TEXT,
    current_period_start TEXT, current_period_end TEXT, canceled_at TEXT,
    cancel_reason TEXT, end_date TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS subscriptions_customer ON subscriptions (customer_id);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY, number TEXT NOT NULL, subscription_id TEXT NOT NULL,
    customer_id TEXT NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL,
    subtotal INTEGER NOT NULL, total INTEGER NOT NULL, period_start TEXT, period_end TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    customer_id TEXT NOT NULL, feature TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (customer_id, feature));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    timestamp TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL,
    status TEXT NOT NULL, auto_attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL, attempted_at TEXT NOT NULL,
    manual INTEGER NOT NULL, status_code INTEGER, latency_ms REAL NOT NULL, error TEXT,
    response TEXT);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL, due_at REAL NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0, claimed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (claimed, due_at);
CREATE INDEX IF NOT EXISTS outbox_delivery ON outbox (delivery_id);
"""


_JOB_DETAILS = (
    "SELECT d.id, d.url, ev.id AS event_id, ev.type, ev.timestamp, ev.body, ep.secret "
    "FROM deliveries d JOIN events ev ON ev.id = d.event_id "
    "JOIN endpoints ep ON ep.id = d.endpoint_id "
)


def new_id(prefix: str) -> str:
    """A fresh random id such as ``sub_1f2e3d4c5b6a7988``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def now_iso() -> str:
    """The current UTC time in the ISO 8601 form used on the wire."""
    return iso_time(datetime.now(timezone.utc))


@dataclass(frozen=True)
class Job:
    """One claimed outbox row: an attempt to make now. ``repr`` hides the secret."""

    outbox_id: int
    delivery_id: str
    manual: bool
    url: str
    event_id: str
    event_type: str
    timestamp: str
    body: bytes
    secret: str

    def __repr__(self) -> str:
        return f"Job(delivery_id={self.delivery_id!r}, url={self.url!r}, manual={self.manual})"


@dataclass(frozen=True)
class AttemptOutcome:
    """What one HTTP attempt produced."""

    attempted_at: str
    finished_at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    response: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Database:
    """The emulator's state, in one SQLite connection (WAL, foreign-free, short statements)."""

    def __init__(self, path: str) -> None:
        """Open (or create) the database at ``path``; ``ValueError`` if it is unusable."""
        self.path = path
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only power loss can drop a commit.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"cannot use the database {path}: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested uses join the outer one."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def next_number(self, counter: str) -> int:
        """Increment and return a named counter (invoice numbers)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1",
                (counter,),
            )
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (counter,)).fetchone()
        return int(row["value"])

    # ------------------------------------------------------------------ endpoints

    def create_endpoint(self, url: str, events: Sequence[str]) -> dict[str, Any]:
        endpoint_id = new_id("ep")
        secret = "whsec_" + secrets.token_urlsafe(24)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO endpoints (id, url, events, secret, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (endpoint_id, url, msgspec.json.encode(list(events)).decode(), secret, now_iso()),
            )
        endpoint = self.get_endpoint(endpoint_id)
        assert endpoint is not None
        return endpoint

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM endpoints WHERE id = ? AND deleted = 0", (endpoint_id,)
        ).fetchone()
        return None if row is None else _endpoint_view(row)

    def list_endpoints(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM endpoints WHERE deleted = 0 ORDER BY created_at, rowid"
        ).fetchall()
        return [_endpoint_view(row) for row in rows]

    def update_endpoint(
        self, endpoint_id: str, *, enabled: bool | None, events: Sequence[str] | None
    ) -> dict[str, Any] | None:
        with self.transaction() as conn:
            if enabled is not None:
                conn.execute(
                    "UPDATE endpoints SET enabled = ?, consecutive_failures = 0 "
                    "WHERE id = ? AND deleted = 0",
                    (int(enabled), endpoint_id),
                )
            if events is not None:
                conn.execute(
                    "UPDATE endpoints SET events = ? WHERE id = ? AND deleted = 0",
                    (msgspec.json.encode(list(events)).decode(), endpoint_id),
                )
        return self.get_endpoint(endpoint_id)

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove an endpoint; its pending deliveries are canceled. False if unknown."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE endpoints SET deleted = 1, enabled = 0 WHERE id = ? AND deleted = 0",
                (endpoint_id,),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "DELETE FROM outbox WHERE delivery_id IN "
                "(SELECT id FROM deliveries WHERE endpoint_id = ?)",
                (endpoint_id,),
            )
            conn.execute(
                "UPDATE deliveries SET status = 'canceled', updated_at = ? "
                "WHERE endpoint_id = ? AND status = 'pending'",
                (now_iso(), endpoint_id),
            )
        return True

    # ------------------------------------------------------------------ events

    def emit(self, event_type: str, data: Mapping[str, Any]) -> str:
        """Record an event and fan it out to every enabled endpoint that subscribes to it.

        The envelope is serialised once; every attempt of every delivery sends
        these exact bytes. Returns the event id (``whev_…``).
        """
        event_type = str(event_type)  # an EventType member becomes its wire name
        envelope = sample_event(event_type, data=dict(data), organization_id=ORGANIZATION_ID)
        body = msgspec.json.encode(envelope)
        now, stamp = time.time(), now_iso()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO events (id, type, timestamp, body) VALUES (?, ?, ?, ?)",
                (envelope["id"], event_type, envelope["timestamp"], body),
            )
            endpoints = conn.execute(
                "SELECT id, url, events FROM endpoints WHERE enabled = 1 AND deleted = 0"
            ).fetchall()
            for endpoint in endpoints:
                wanted = msgspec.json.decode(endpoint["events"])
                if wanted and "*" not in wanted and event_type not in wanted:
                    continue
                delivery_id = new_id("dlv")
                conn.execute(
                    "INSERT INTO deliveries (id, event_id, endpoint_id, url, status, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (delivery_id, envelope["id"], endpoint["id"], endpoint["url"], stamp, stamp),
                )
                conn.execute(
                    "INSERT INTO outbox (delivery_id, due_at) VALUES (?, ?)", (delivery_id, now)
                )
        return str(envelope["id"])

    @staticmethod
    def _event_filter(event_type: str | None, status: str | None) -> tuple[str, list[object]]:
        """The ``WHERE`` clause (or ``""``) and parameters shared by list and count."""
        where: list[str] = []
        params: list[object] = []
        if event_type:
            where.append("type = ?")
            params.append(event_type)
        if status:
            where.append("id IN (SELECT event_id FROM deliveries WHERE status = ?)")
            params.append(status)
        return (" WHERE " + " AND ".join(where) if where else ""), params

    def count_events(self, *, event_type: str | None = None, status: str | None = None) -> int:
        """How many events :meth:`list_events` would page through with these filters."""
        where, params = self._event_filter(event_type, status)
        sql = "SELECT COUNT(*) FROM events" + where  # noqa: S608 - fixed clauses, bound values
        row = self.conn.execute(sql, params).fetchone()
        return int(row[0])

    def list_events(
        self,
        *,
        event_type: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Events newest first (skipping the newest ``offset``), each with its deliveries
        and their attempts.

        ``status`` keeps the events that have at least one delivery in that status.
        """
        where, params = self._event_filter(event_type, status)
        sql = "SELECT * FROM events" + where  # noqa: S608 - fixed clauses, bound values
        rows = self.conn.execute(
            sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        deliveries = self.list_deliveries(event_ids=[row["id"] for row in rows], limit=None)
        by_event: dict[str, list[dict[str, Any]]] = {}
        for delivery in deliveries:
            by_event.setdefault(delivery["eventId"], []).append(delivery)
        return [
            {
                "id": row["id"],
                "event": row["type"],
                "timestamp": row["timestamp"],
                "payload": msgspec.json.decode(row["body"]),
                "deliveries": by_event.get(row["id"], []),
            }
            for row in rows
        ]

    def event_types(self) -> list[str]:
        rows = self.conn.execute("SELECT DISTINCT type FROM events ORDER BY type").fetchall()
        return [row["type"] for row in rows]

    # ------------------------------------------------------------------ deliveries

    def list_deliveries(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        delivery_id: str | None = None,
        endpoint_id: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Deliveries newest first, each with its attempts (oldest first) and next due time."""
        where: list[str] = []
        params: list[object] = []
        if event_ids is not None:
            if not event_ids:
                return []
            where.append(f"d.event_id IN ({_marks(event_ids)})")
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
        rows = self.conn.execute(sql, params).fetchall()
        attempts = self._attempts_for([row["id"] for row in rows])
        return [_delivery_view(row, attempts.get(row["id"], [])) for row in rows]

    def get_delivery(self, delivery_id: str) -> dict[str, Any] | None:
        found = self.list_deliveries(delivery_id=delivery_id, limit=1)
        return found[0] if found else None

    def _attempts_for(self, delivery_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {}
        # Chunked to stay under SQLite's bound-parameter limit.
        for start in range(0, len(delivery_ids), 500):
            chunk = delivery_ids[start : start + 500]
            rows = self.conn.execute(
                f"SELECT * FROM attempts WHERE delivery_id IN ({_marks(chunk)}) ORDER BY id",  # noqa: S608
                chunk,
            ).fetchall()
            for row in rows:
                result.setdefault(row["delivery_id"], []).append(_attempt_view(row))
        return result

    def request_redelivery(self, delivery_id: str) -> bool:
        """Queue one manual attempt now; False when the delivery does not exist."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE deliveries SET status = 'pending', updated_at = ? WHERE id = ? "
                "AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted = 0)",
                (now_iso(), delivery_id),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO outbox (delivery_id, due_at, manual) VALUES (?, ?, 1)",
                (delivery_id, time.time()),
            )
        return True

    # ------------------------------------------------------------------ outbox

    def release_claims(self) -> int:
        """Make every claimed row due again (start-up after a crash); returns how many."""
        with self.transaction() as conn:
            return conn.execute("UPDATE outbox SET claimed = 0 WHERE claimed = 1").rowcount

    def claim_due(self, now: float, limit: int) -> list[Job]:
        """Claim up to ``limit`` outbox rows due at ``now``, oldest first."""
        with self.transaction() as conn:
            claimed = conn.execute(
                "UPDATE outbox SET claimed = 1 WHERE id IN (SELECT id FROM outbox "
                "WHERE claimed = 0 AND due_at <= ? ORDER BY due_at, id LIMIT ?) "
                "RETURNING id, delivery_id, manual",
                (now, limit),
            ).fetchall()
            if not claimed:
                return []
            ids = [row["delivery_id"] for row in claimed]
            details = {
                row["id"]: row
                for row in conn.execute(
                    _JOB_DETAILS + f"WHERE d.id IN ({_marks(ids)})",
                    ids,
                )
            }
        jobs = []
        for row in claimed:
            info = details.get(row["delivery_id"])
            if info is None:  # the delivery vanished; drop the orphan row
                self.conn.execute("DELETE FROM outbox WHERE id = ?", (row["id"],))
                continue
            jobs.append(
                Job(
                    outbox_id=row["id"],
                    delivery_id=row["delivery_id"],
                    manual=bool(row["manual"]),
                    url=info["url"],
                    event_id=info["event_id"],
                    event_type=info["type"],
                    timestamp=info["timestamp"],
                    body=bytes(info["body"]),
                    secret=info["secret"],
                )
            )
        return jobs

    def next_due_at(self) -> float | None:
        row = self.conn.execute(
            "SELECT MIN(due_at) AS due FROM outbox WHERE claimed = 0"
        ).fetchone()
        return None if row["due"] is None else float(row["due"])

    def record_attempt(
        self,
        job: Job,
        outcome: AttemptOutcome,
        *,
        retry_delays: Sequence[float],
        auto_disable_after: int | None,
    ) -> str | None:
        """Log an attempt and move the delivery on; returns an endpoint id that got disabled.

        A scheduled attempt that fails schedules the next one ``retry_delays[n]``
        seconds after it finished, until the delays run out and the delivery is
        failed. A manual attempt is one extra try: it never schedules retries.
        """
        stamp = now_iso()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO attempts (delivery_id, attempted_at, manual, status_code, latency_ms, "
                "error, response) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job.delivery_id,
                    outcome.attempted_at,
                    int(job.manual),
                    outcome.status_code,
                    outcome.latency_ms,
                    outcome.error,
                    outcome.response,
                ),
            )
            conn.execute("DELETE FROM outbox WHERE id = ?", (job.outbox_id,))
            delivery = conn.execute(
                "UPDATE deliveries SET auto_attempts = auto_attempts + ?, updated_at = ? "
                "WHERE id = ? RETURNING auto_attempts, endpoint_id, status",
                (0 if job.manual else 1, stamp, job.delivery_id),
            ).fetchone()
            if delivery is None or delivery["status"] == "canceled":
                return None
            if delivery["status"] == "succeeded" and not outcome.ok:
                return None  # a late failure after a successful redelivery changes nothing
            endpoint_id = delivery["endpoint_id"]
            if outcome.ok:
                conn.execute("DELETE FROM outbox WHERE delivery_id = ?", (job.delivery_id,))
                self._set_status(job.delivery_id, "succeeded", stamp)
                conn.execute(
                    "UPDATE endpoints SET consecutive_failures = 0 WHERE id = ?", (endpoint_id,)
                )
                return None
            retries_done = delivery["auto_attempts"] - 1
            if not job.manual and retries_done < len(retry_delays):
                conn.execute(
                    "INSERT INTO outbox (delivery_id, due_at) VALUES (?, ?)",
                    (job.delivery_id, outcome.finished_at + retry_delays[retries_done]),
                )
                return None
            if conn.execute(
                "SELECT 1 FROM outbox WHERE delivery_id = ?", (job.delivery_id,)
            ).fetchone():
                return None  # a scheduled retry is still ahead: stay pending
            self._set_status(job.delivery_id, "failed", stamp)
            if job.manual:
                return None  # the event already counted when it first failed
            failures = conn.execute(
                "UPDATE endpoints SET consecutive_failures = consecutive_failures + 1 "
                "WHERE id = ? RETURNING consecutive_failures, enabled",
                (endpoint_id,),
            ).fetchone()
            if (
                auto_disable_after is not None
                and failures is not None
                and failures["enabled"]
                and failures["consecutive_failures"] >= auto_disable_after
            ):
                conn.execute("UPDATE endpoints SET enabled = 0 WHERE id = ?", (endpoint_id,))
                return str(endpoint_id)
        return None

    def _set_status(self, delivery_id: str, status: str, stamp: str) -> None:
        self.conn.execute(
            "UPDATE deliveries SET status = ?, updated_at = ? WHERE id = ?",
            (status, stamp, delivery_id),
        )


def _marks(values: Sequence[object]) -> str:
    """``?, ?, ?``: one bound parameter per value (the SQL never holds the values)."""
    return ", ".join("?" * len(values))


def _endpoint_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "events": msgspec.json.decode(row["events"]),
        "secret": row["secret"],
        "enabled": bool(row["enabled"]),
    }


def _delivery_view(row: sqlite3.Row, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    next_due = row["next_due"]
    return {
        "id": row["id"],
        "eventId": row["event_id"],
        "event": row["event_type"],
        "endpointId": row["endpoint_id"],
        "url": row["url"],
        "status": row["status"],
        "attempts": attempts,
        "nextAttemptAt": None
        if next_due is None
        else iso_time(datetime.fromtimestamp(next_due, timezone.utc)),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }


def _attempt_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "attemptedAt": row["attempted_at"],
        "manual": bool(row["manual"]),
        "statusCode": row["status_code"],
        "latencyMs": row["latency_ms"],
        "error": row["error"],
        "response": row["response"],
    }
