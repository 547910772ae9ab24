"""The test clock's offset and last run, and the answers kept for ``Idempotency-Key``."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from .database import Database

__all__ = ["ClockStore", "Counters", "IdempotencyStore"]

#: How long an ``Idempotency-Key`` answer is replayed, as on the platform.
IDEMPOTENCY_TTL = 24 * 3600.0


class ClockStore:
    """One row: how far the simulated clock runs ahead of real time, and its last run."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def offset(self) -> float:
        row = self.db.conn.execute("SELECT offset_seconds FROM clock WHERE id = 1").fetchone()
        return float(row["offset_seconds"])

    def set_offset(self, seconds: float) -> None:
        self.db.conn.execute("UPDATE clock SET offset_seconds = ? WHERE id = 1", (seconds,))

    def last_run(self) -> dict[str, Any] | None:
        row = self.db.conn.execute("SELECT run FROM clock WHERE id = 1").fetchone()
        return None if row["run"] is None else msgspec.json.decode(row["run"])

    def set_last_run(self, run: dict[str, Any]) -> None:
        self.db.conn.execute(
            "UPDATE clock SET run = ? WHERE id = 1", (msgspec.json.encode(run).decode(),)
        )


class IdempotencyStore:
    """Answers to writes, by (key, route), replayed for 24 hours."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, key: str, route: str) -> tuple[str, int, bytes] | None:
        """(request fingerprint, status, body) stored for this key, if still fresh."""
        row = self.db.conn.execute(
            "SELECT fingerprint, status, body, created_at FROM idempotency "
            "WHERE key = ? AND route = ?",
            (key, route),
        ).fetchone()
        if row is None or row["created_at"] < time.time() - IDEMPOTENCY_TTL:
            return None
        return row["fingerprint"], int(row["status"]), bytes(row["body"])

    def keep(self, key: str, route: str, fingerprint: str, status: int, body: bytes) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO idempotency (key, route, fingerprint, status, body, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key, route, fingerprint, status, body, time.time()),
            )
            conn.execute(
                "DELETE FROM idempotency WHERE created_at < ?", (time.time() - IDEMPOTENCY_TTL,)
            )


class Counters:
    """Named counters in ``meta`` (charges or payouts the simulation must fail next)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, name: str, count: int) -> int:
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value RETURNING value",
                (name, count),
            ).fetchone()
        return int(row["value"])

    def take(self, name: str) -> bool:
        """Use one unit of ``name``; False when there is none left."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "UPDATE meta SET value = value - 1 WHERE key = ? AND value > 0 RETURNING value",
                (name,),
            ).fetchone()
        return row is not None
