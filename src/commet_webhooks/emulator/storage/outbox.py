"""The durable outbox: attempts waiting to be made, claimed while in flight.

A claimed row is an attempt in progress. Claims are released at start-up, so an
attempt cut short by a crash is made again after a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from ..policy import DeliveryState, NextState
from .database import Database, marks
from .times import now_iso

__all__ = ["RESPONSE_EXCERPT_BYTES", "AttemptOutcome", "Job", "Outbox"]

#: Bytes of a receiver's answer kept in the attempt log.
RESPONSE_EXCERPT_BYTES = 500

_JOB_DETAILS = (
    "SELECT d.id, d.url, d.endpoint_id, COALESCE(d.body, ev.body) AS body, ev.id AS event_id, "
    "ev.type, ev.timestamp, ep.secret, ep.chaos "
    "FROM deliveries d JOIN events ev ON ev.id = d.event_id "
    "JOIN endpoints ep ON ep.id = d.endpoint_id "
)


@dataclass(frozen=True)
class Job:
    """One claimed outbox row: an attempt to make now. ``repr`` hides the secret."""

    outbox_id: int
    delivery_id: str
    endpoint_id: str
    manual: bool
    url: str
    event_id: str
    event_type: str
    timestamp: str
    body: bytes
    secret: str
    #: The endpoint's chaos settings (JSON), if it has its own.
    chaos: str | None = None
    #: Chaos already held this attempt back once.
    postponed: bool = False

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
    #: What chaos did to this attempt, if anything.
    note: str | None = None
    #: Why an attempt without an HTTP status failed (for the metrics; not stored):
    #: no answer in time, no connection or a broken one, or chaos dropped the answer.
    failure: Literal["timeout", "connection_error", "dropped"] | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Outbox:
    """The ``outbox`` table, and writing an attempt's result."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def release_claims(self) -> int:
        """Make every claimed row due again (start-up after a crash); returns how many."""
        with self.db.transaction() as conn:
            return conn.execute("UPDATE outbox SET claimed = 0 WHERE claimed = 1").rowcount

    def claim_due(self, now: float, limit: int) -> list[Job]:
        """Claim up to ``limit`` rows due at ``now``, oldest first."""
        return self._claim(
            "SELECT id FROM outbox WHERE claimed = 0 AND due_at <= ? ORDER BY due_at, id LIMIT ?",
            (now, limit),
        )

    def claim_delivery(self, delivery_id: str) -> Job | None:
        """Claim the waiting attempt of one delivery (to make it right away)."""
        jobs = self._claim(
            "SELECT id FROM outbox WHERE claimed = 0 AND delivery_id = ? ORDER BY id LIMIT 1",
            (delivery_id,),
        )
        return jobs[0] if jobs else None

    def _claim(self, selection: str, params: tuple[object, ...]) -> list[Job]:
        with self.db.transaction() as conn:
            claimed = conn.execute(
                f"UPDATE outbox SET claimed = 1 WHERE id IN ({selection}) "  # noqa: S608 - fixed
                "RETURNING id, delivery_id, manual, postponed",
                params,
            ).fetchall()
            if not claimed:
                return []
            ids = [row["delivery_id"] for row in claimed]
            details = {
                row["id"]: row
                for row in conn.execute(_JOB_DETAILS + f"WHERE d.id IN ({marks(ids)})", ids)
            }
            jobs = []
            for row in claimed:
                info = details.get(row["delivery_id"])
                if info is None:  # the delivery vanished; drop the orphan row
                    conn.execute("DELETE FROM outbox WHERE id = ?", (row["id"],))
                    continue
                jobs.append(
                    Job(
                        outbox_id=row["id"],
                        delivery_id=row["delivery_id"],
                        endpoint_id=info["endpoint_id"],
                        manual=bool(row["manual"]),
                        url=info["url"],
                        event_id=info["event_id"],
                        event_type=info["type"],
                        timestamp=info["timestamp"],
                        body=bytes(info["body"]),
                        secret=info["secret"],
                        chaos=info["chaos"],
                        postponed=bool(row["postponed"]),
                    )
                )
        return jobs

    def next_due_at(self) -> float | None:
        row = self.db.conn.execute(
            "SELECT MIN(due_at) AS due FROM outbox WHERE claimed = 0"
        ).fetchone()
        return None if row["due"] is None else float(row["due"])

    def queue_manual(self, delivery_id: str) -> bool:
        """Queue one manual attempt now; False when the delivery does not exist."""
        with self.db.transaction() as conn:
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

    def postpone(self, job: Job, due_at: float) -> None:
        """Put a claimed attempt back, due later (chaos reordering)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET claimed = 0, due_at = ?, postponed = 1 WHERE id = ?",
                (due_at, job.outbox_id),
            )

    def state_after(self, job: Job) -> DeliveryState | None:
        """The delivery as it stands now (call inside the recording transaction)."""
        conn = self.db.conn
        row = conn.execute(
            "SELECT status, auto_attempts FROM deliveries WHERE id = ?", (job.delivery_id,)
        ).fetchone()
        if row is None:
            return None
        other = conn.execute(
            "SELECT 1 FROM outbox WHERE delivery_id = ? AND id != ?",
            (job.delivery_id, job.outbox_id),
        ).fetchone()
        return DeliveryState(row["status"], row["auto_attempts"], other is not None)

    def record(self, job: Job, outcome: AttemptOutcome, after: NextState) -> None:
        """Log the attempt, drop its row and apply ``after`` (inside a transaction)."""
        conn = self.db.conn
        conn.execute(
            "INSERT INTO attempts (delivery_id, attempted_at, manual, status_code, latency_ms, "
            "error, response, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.delivery_id,
                outcome.attempted_at,
                int(job.manual),
                outcome.status_code,
                outcome.latency_ms,
                outcome.error,
                outcome.response,
                outcome.note,
            ),
        )
        conn.execute("DELETE FROM outbox WHERE id = ?", (job.outbox_id,))
        conn.execute(
            "UPDATE deliveries SET status = ?, auto_attempts = ?, updated_at = ? WHERE id = ?",
            (after.status, after.auto_attempts, now_iso(), job.delivery_id),
        )
        if after.status == "succeeded":
            conn.execute("DELETE FROM outbox WHERE delivery_id = ?", (job.delivery_id,))
        if after.retry_in is not None:
            conn.execute(
                "INSERT INTO outbox (delivery_id, due_at) VALUES (?, ?)",
                (job.delivery_id, outcome.finished_at + after.retry_in),
            )
