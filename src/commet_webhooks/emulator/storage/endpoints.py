"""Webhook endpoints: where events go, which ones, signed with which secret."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from ..._wire import new_id
from .database import Database
from .times import now_iso

__all__ = ["Endpoint", "EndpointStore"]


@dataclass(frozen=True)
class Endpoint:
    """A stored endpoint. ``repr`` hides the secret."""

    id: str
    url: str
    events: list[str]
    secret: str
    enabled: bool
    description: str | None
    api_version: str | None
    disabled_reason: str | None
    consecutive_failures: int
    created_at: str
    seq: int
    #: This endpoint's chaos settings (JSON), or None for the emulator's default.
    chaos: str | None = None

    def __repr__(self) -> str:
        return f"Endpoint(id={self.id!r}, url={self.url!r}, enabled={self.enabled})"

    def wants(self, event_type: str) -> bool:
        """True when this endpoint subscribes to ``event_type`` (no list or ``*`` = all)."""
        return not self.events or "*" in self.events or event_type in self.events


def _endpoint(row: sqlite3.Row) -> Endpoint:
    return Endpoint(
        id=row["id"],
        url=row["url"],
        events=msgspec.json.decode(row["events"]),
        secret=row["secret"],
        enabled=bool(row["enabled"]),
        description=row["description"],
        api_version=row["api_version"],
        disabled_reason=row["disabled_reason"],
        consecutive_failures=row["consecutive_failures"],
        created_at=row["created_at"],
        seq=row["seq"] or 0,
        chaos=row["chaos"],
    )


class EndpointStore:
    """The ``endpoints`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        api_version: str | None = None,
    ) -> Endpoint:
        endpoint_id = new_id("ep")
        secret = "whsec_" + secrets.token_urlsafe(24)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO endpoints (id, url, events, secret, created_at, description, "
                "api_version, seq) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM endpoints))",
                (
                    endpoint_id,
                    url,
                    msgspec.json.encode(list(events)).decode(),
                    secret,
                    now_iso(),
                    description,
                    api_version,
                ),
            )
        endpoint = self.get(endpoint_id)
        assert endpoint is not None
        return endpoint

    def get(self, endpoint_id: str) -> Endpoint | None:
        row = self.db.conn.execute(
            "SELECT * FROM endpoints WHERE id = ? AND deleted = 0", (endpoint_id,)
        ).fetchone()
        return None if row is None else _endpoint(row)

    def page(self, *, after_seq: int = 0, limit: int | None = None) -> list[Endpoint]:
        """Endpoints oldest first, those created after ``after_seq`` (a cursor)."""
        sql = "SELECT * FROM endpoints WHERE deleted = 0 AND seq > ? ORDER BY seq"
        params: tuple[object, ...] = (after_seq,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (after_seq, limit)
        return [_endpoint(row) for row in self.db.conn.execute(sql, params)]

    def active(self) -> list[Endpoint]:
        rows = self.db.conn.execute(
            "SELECT * FROM endpoints WHERE enabled = 1 AND deleted = 0 ORDER BY seq"
        )
        return [_endpoint(row) for row in rows]

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        enabled: bool | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        api_version: str | None = None,
    ) -> Endpoint | None:
        """Change the given fields; enabling resets the failure count and the reason."""
        with self.db.transaction() as conn:
            if enabled is not None:
                conn.execute(
                    "UPDATE endpoints SET enabled = ?, consecutive_failures = 0, "
                    "disabled_reason = CASE WHEN ? THEN NULL ELSE 'manual' END "
                    "WHERE id = ? AND deleted = 0",
                    (int(enabled), int(enabled), endpoint_id),
                )
            changes: dict[str, object] = {}
            if url is not None:
                changes["url"] = url
            if events is not None:
                changes["events"] = msgspec.json.encode(list(events)).decode()
            if description is not None:
                changes["description"] = description
            if api_version is not None:
                changes["api_version"] = api_version
            if changes:
                assignments = ", ".join(f"{name} = ?" for name in changes)
                conn.execute(
                    f"UPDATE endpoints SET {assignments} WHERE id = ? AND deleted = 0",  # noqa: S608 - fixed names
                    (*changes.values(), endpoint_id),
                )
        return self.get(endpoint_id)

    def set_chaos(self, endpoint_id: str, chaos: str | None) -> Endpoint | None:
        """Store this endpoint's chaos settings (JSON), or None for the default."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE endpoints SET chaos = ? WHERE id = ? AND deleted = 0", (chaos, endpoint_id)
            )
        return self.get(endpoint_id)

    def delete(self, endpoint_id: str) -> bool:
        """Remove an endpoint; its pending deliveries are canceled. False if unknown."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE endpoints SET deleted = 1, enabled = 0 WHERE id = ? AND deleted = 0",
                (endpoint_id,),
            )
            if cur.rowcount == 0:
                return False
            _cancel_pending(conn, endpoint_id)
        return True

    def count_failure(self, endpoint_id: str, *, disable_after: int | None) -> bool:
        """One more event failed in a row; True when that disabled the endpoint.

        Disabling cancels the endpoint's other pending deliveries: the platform does
        not deliver (nor later replay) anything to a disabled endpoint.
        """
        conn = self.db.conn
        row = conn.execute(
            "UPDATE endpoints SET consecutive_failures = consecutive_failures + 1 "
            "WHERE id = ? RETURNING consecutive_failures, enabled",
            (endpoint_id,),
        ).fetchone()
        if (
            disable_after is None
            or row is None
            or not row["enabled"]
            or row["consecutive_failures"] < disable_after
        ):
            return False
        conn.execute(
            "UPDATE endpoints SET enabled = 0, disabled_reason = 'consecutive_failures' "
            "WHERE id = ?",
            (endpoint_id,),
        )
        _cancel_pending(conn, endpoint_id)
        return True

    def count_success(self, endpoint_id: str) -> None:
        self.db.conn.execute(
            "UPDATE endpoints SET consecutive_failures = 0 WHERE id = ?", (endpoint_id,)
        )


def _cancel_pending(conn: sqlite3.Connection, endpoint_id: str) -> None:
    conn.execute(
        "DELETE FROM outbox WHERE claimed = 0 AND delivery_id IN "
        "(SELECT id FROM deliveries WHERE endpoint_id = ?)",
        (endpoint_id,),
    )
    conn.execute(
        "UPDATE deliveries SET status = 'canceled', updated_at = ? "
        "WHERE endpoint_id = ? AND status = 'pending'",
        (now_iso(), endpoint_id),
    )
