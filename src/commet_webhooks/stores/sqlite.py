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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import StoreUnavailableError
from ._base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    ForkGuard,
    Step,
    Steps,
    T,
    drive,
    unavailable,
)
from ._sql import DEFAULT_PURGE_INTERVAL, DEFAULT_TABLE, Dialect, SqlStore

__all__ = ["DEFAULT_TABLE", "SQLiteStore"]

logger = logging.getLogger("commet_webhooks.stores.sqlite")

# Times are Unix seconds from this machine's clock, bound as parameters.
_DIALECT = Dialect("REAL", ":now", ":lease_end", ":retention_end", param=":{}")


def _quote(identifier: str) -> str:
    if not identifier or "\x00" in identifier:
        raise ValueError("table must be a non-empty name")
    return '"' + identifier.replace('"', '""') + '"'


class SQLiteStore(SqlStore):
    """Keys in a table of an SQLite file shared by every process of one machine.

    A row is ``(key, owner, expires_at)``: ``owner`` is the claim's token while a lease
    is held and NULL once the key is done; ``expires_at`` (Unix time) ends the lease or
    the retention. Expired rows are taken over by the next claim and deleted every
    ``purge_interval`` seconds (or by :meth:`purge`).

    ``busy_timeout`` bounds the whole call: the wait for another thread of this process
    and for a lock held by another process, before giving up with
    ``StoreUnavailableError``. The database runs with ``synchronous=NORMAL``: a power
    cut (not a process crash) may forget the last completions, so those events could
    run once more.
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
        super().__init__(table, logger, lease_seconds, retention_seconds, purge_interval)
        if not busy_timeout >= 0:
            raise ValueError("busy_timeout must be zero or a positive number of seconds")
        self.path = os.fspath(path)
        self.busy_timeout = float(busy_timeout)
        t = _quote(table)
        self._schema = _DIALECT.schema(t, _quote(table + "_expires_at"))
        self._sql = _DIALECT.statements(t)
        # One connection per process, used by one thread at a time: threads queue on
        # this lock instead of spinning in SQLite's busy handler.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._fork = ForkGuard()

    def __repr__(self) -> str:
        return (
            f"SQLiteStore({self.path!r}, lease_seconds={self.lease_seconds:g}, "
            f"retention_seconds={self.retention_seconds:g})"
        )

    def close(self) -> None:
        """Close this process's connection; the next call opens a new one."""
        if self._fork.forked(lambda: self._conn):
            self._conn = None
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------ internals

    def _run(self, make_steps: Callable[[], Steps[T]]) -> T:
        with self._connection() as conn:
            return drive(make_steps(), lambda step: self._execute(conn, step))

    def _execute(self, conn: sqlite3.Connection, step: Step) -> Any:
        op, key, owner = step
        now = time.time()
        params = {
            "key": key,
            "owner": owner,
            "now": now,
            "lease_end": now + self.lease_seconds,
            "retention_end": now + self.retention_seconds,
        }
        return self._found(op, conn.execute(self._sql[op], params).fetchall())

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._fork.forked(lambda: self._conn):
            self._conn = None
        began = time.monotonic()
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise StoreUnavailableError(
                f"SQLite idempotency store {self.path!r} unavailable: "
                f"busy for more than {self.busy_timeout:g}s in this process"
            )
        try:
            if self._conn is None:
                self._conn = self._connect()
            # What is left of busy_timeout after queueing here bounds SQLite's own wait.
            waited = time.monotonic() - began
            shortened = waited > 0.05 * self.busy_timeout + 0.001
            if shortened:
                self._busy(self._conn, self.busy_timeout - waited)
            try:
                yield self._conn
            finally:
                if shortened:
                    self._busy(self._conn, self.busy_timeout)
        except sqlite3.Error as exc:
            raise unavailable(f"SQLite idempotency store {self.path!r}", exc) from exc
        finally:
            self._lock.release()

    @staticmethod
    def _busy(conn: sqlite3.Connection, seconds: float) -> None:
        conn.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: every statement is its own transaction, so no lock outlives a call.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            _use_wal(conn, self.busy_timeout)
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in self._schema:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn


def _use_wal(conn: sqlite3.Connection, seconds: float) -> None:
    """Put the file in WAL mode, waiting up to ``seconds`` for other connections.

    Switching a new file to WAL takes an exclusive lock, and when another process opens
    the same new file at that moment SQLite answers "database is locked" at once
    instead of waiting out the busy timeout (4 processes starting together on a fresh
    file: 13 of 160 failed their first call). Once the file is in WAL mode the pragma
    changes nothing and takes no such lock.
    """
    deadline = time.monotonic() + seconds
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
