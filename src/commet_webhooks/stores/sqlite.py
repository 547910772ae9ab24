"""SQLite idempotency store: exactly-once handling across the processes of one machine.

Every worker process opens the same database file. The file runs in WAL mode (readers
never wait for the writer) with a busy timeout, and each claim is one atomic upsert,
so two processes can never both own a key. A database locked for longer than the busy
timeout raises :class:`~commet_webhooks.errors.StoreUnavailableError`, which the
dispatcher answers with 503 so Commet retries later.

Use it when all workers share one disk (gunicorn or uvicorn workers on one host); for
several machines use ``RedisStore`` or ``PostgresStore``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import StoreUnavailableError
from ._base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    Claim,
    IdempotencyStore,
    unavailable,
)

__all__ = ["DEFAULT_TABLE", "SQLiteStore"]

logger = logging.getLogger("commet_webhooks.stores.sqlite")

DEFAULT_TABLE = "commet_webhook_keys"
#: How often (seconds) a process deletes expired rows while claiming.
DEFAULT_PURGE_INTERVAL = 300.0
# A key that vanishes between "take" and "look" (released, expired) is retried this often.
_ATTEMPTS = 3


# {t} is the quoted table name; every value is a bound parameter.
_SQL = {
    "table": "CREATE TABLE IF NOT EXISTS {t} ("
    "key TEXT PRIMARY KEY, owner TEXT, expires_at REAL NOT NULL)",
    "index": "CREATE INDEX IF NOT EXISTS {i} ON {t} (expires_at)",
    # Insert, or take over a row whose lease or retention has run out.
    "claim": "INSERT INTO {t} (key, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
    "expires_at = excluded.expires_at WHERE {t}.expires_at <= ? RETURNING 1",
    "inspect": "SELECT owner FROM {t} WHERE key = ? AND expires_at > ?",
    "complete": "UPDATE {t} SET owner = NULL, expires_at = ? WHERE key = ? AND owner = ?",
    "release": "DELETE FROM {t} WHERE key = ? AND owner = ?",
    "purge": "DELETE FROM {t} WHERE expires_at <= ?",
}


def _quote(identifier: str) -> str:
    if not identifier or "\x00" in identifier:
        raise ValueError("table must be a non-empty name")
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteStore(IdempotencyStore):
    """Keys in a table of an SQLite file shared by every process of one machine.

    A row is ``(key, owner, expires_at)``: ``owner`` is the claim's token while a lease
    is held and NULL once the key is done; ``expires_at`` (Unix time) ends the lease or
    the retention. Expired rows are taken over by the next claim and deleted every
    ``purge_interval`` seconds (or by :meth:`purge`).

    ``busy_timeout`` bounds how long a call waits for a lock held by another process
    (or thread) before giving up with ``StoreUnavailableError``. The database runs
    with ``synchronous=NORMAL``: a power cut (not a process crash) may forget the last
    completions, so those events could run once more.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        busy_timeout: float = 5.0,
        table: str = DEFAULT_TABLE,
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retention_seconds=retention_seconds)
        if not busy_timeout >= 0:
            raise ValueError("busy_timeout must be zero or a positive number of seconds")
        if not purge_interval > 0:
            raise ValueError("purge_interval must be positive")
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        self.table = table
        self.purge_interval = float(purge_interval)
        t = _quote(table)
        self._sql = {
            name: template.format(t=t, i=_quote(table + "_expires_at"))
            for name, template in _SQL.items()
        }
        # One connection per process, used by one thread at a time: threads queue on
        # this lock instead of spinning in SQLite's busy handler.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # Connections inherited through fork(): never used, never closed (closing
        # could disturb the parent's locks), only kept from being garbage collected.
        self._inherited: list[sqlite3.Connection] = []
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return (
            f"SQLiteStore({self.path!r}, lease_seconds={self.lease_seconds:g}, "
            f"retention_seconds={self.retention_seconds:g})"
        )

    # ------------------------------------------------------------ protocol

    def claim(self, key: str, owner: str) -> Claim:
        with self._connection() as conn:
            now = time.time()
            if time.monotonic() >= self._next_purge:
                self._purge(conn, now)
            for _ in range(_ATTEMPTS):
                params = (key, owner, now + self.lease_seconds, now)
                if conn.execute(self._sql["claim"], params).fetchall():
                    return Claim.CLAIMED
                rows = conn.execute(self._sql["inspect"], (key, now)).fetchall()
                if rows:
                    return Claim.DONE if rows[0][0] is None else Claim.BUSY
                now = time.time()
            return Claim.BUSY

    def complete(self, key: str, owner: str) -> bool:
        with self._connection() as conn:
            params = (time.time() + self.retention_seconds, key, owner)
            return conn.execute(self._sql["complete"], params).rowcount == 1

    def release(self, key: str, owner: str) -> bool:
        with self._connection() as conn:
            return conn.execute(self._sql["release"], (key, owner)).rowcount == 1

    def purge(self) -> int:
        """Delete every expired lease and every done key past its retention now.

        Claims do this on their own every ``purge_interval`` seconds; call it from a
        scheduled job if the receiver is idle for long stretches. Returns the count.
        """
        with self._connection() as conn:
            return self._purge(conn, time.time())

    def close(self) -> None:
        """Close this process's connection; the next call opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    # ------------------------------------------------------------ internals

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        self._next_purge = time.monotonic() + self.purge_interval
        count = conn.execute(self._sql["purge"], (now,)).rowcount
        if count:
            logger.debug("purged %d expired idempotency keys from %s", count, self.path)
        return count

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise StoreUnavailableError(
                f"SQLite idempotency store {self.path!r} unavailable: "
                f"busy for more than {self.busy_timeout:g}s in this process"
            )
        try:
            if self._conn is None or self._pid != os.getpid():
                if self._conn is not None:
                    self._inherited.append(self._conn)
                self._conn = None
                self._conn = self._connect()
                self._pid = os.getpid()
            yield self._conn
        except sqlite3.Error as exc:
            raise unavailable(f"SQLite idempotency store {self.path!r}", exc) from exc
        finally:
            self._lock.release()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: every statement is its own transaction, so no lock outlives a call.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(self._sql["table"])
            conn.execute(self._sql["index"])
        except BaseException:
            conn.close()
            raise
        return conn
