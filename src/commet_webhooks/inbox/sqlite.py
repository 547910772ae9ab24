"""The inbox in an SQLite file: the embedded default, for the workers of one machine.

Same file handling as :class:`~commet_webhooks.stores.sqlite.SQLiteStore` (WAL, one
connection per process, ``busy_timeout`` bounding every call, a locked database ->
``StoreUnavailableError`` -> 503); only the table differs.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

from ..stores._base import DEFAULT_LEASE_SECONDS
from ..stores._sql import DEFAULT_PURGE_INTERVAL
from ..stores.sqlite import SQLiteStore, _quote
from ._model import DEFAULT_KEEP
from ._store import DEFAULT_INBOX_TABLE, InboxDialect, InboxStore

__all__ = ["SQLiteInbox"]

# Times are Unix seconds from this machine's clock, bound as parameters.
_DIALECT = InboxDialect(
    time="REAL", blob="BLOB", now=":now", lease_end=":lease_end", cutoff=":cutoff", param=":{}"
)


class SQLiteInbox(InboxStore, SQLiteStore):
    """Every verified event in a table of an SQLite file, claimed and kept.

    Use it as ``Webhooks(idempotency_store=SQLiteInbox("inbox.db"))``. ``keep`` (a
    ``timedelta`` or seconds; 30 days by default) is how long an event stays, counted
    from when it was received: it still dedupes Commet's redeliveries for that long.
    ``dead_after`` turns an event that failed that many attempts into ``dead``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep: timedelta | float = DEFAULT_KEEP,
        dead_after: int | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        busy_timeout: float = 5.0,
        table: str = DEFAULT_INBOX_TABLE,
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
    ) -> None:
        super().__init__(
            path,
            lease_seconds=lease_seconds,
            busy_timeout=busy_timeout,
            table=table,
            purge_interval=purge_interval,
        )
        self._setup_inbox(keep, dead_after)
        self._dialect = _DIALECT
        self._table_quoted = _quote(table)
        resources = _quote(table + "_resources")
        self._schema = _DIALECT.schema(
            self._table_quoted, resources, _quote(table + "_received_at")
        )
        self._sql = _DIALECT.statements(self._table_quoted, resources)

    def __repr__(self) -> str:
        return f"SQLiteInbox({self.path!r}, table={self.table!r}, keep={self.keep_seconds:g}s)"

    @property
    def location(self) -> str:
        return f"sqlite:{os.path.abspath(self.path)}#{self.table}"

    @property
    def _table_sql(self) -> str:
        return self._table_quoted

    def _db_time(self, moment: datetime) -> Any:
        return moment.timestamp()

    def _py_time(self, value: Any) -> datetime:
        return datetime.fromtimestamp(float(value), timezone.utc)

    def _execute(self, conn: sqlite3.Connection, step: Any) -> Any:
        op, sql, values = self._values(step)
        # From a datetime, so a time read back and bound again compares equal.
        now = datetime.now(timezone.utc).timestamp()
        values["now"] = now
        values["lease_end"] = now + self.lease_seconds
        values["cutoff"] = now - self.keep_seconds
        return self._inbox_result(op, conn.execute(sql, values).fetchall(), self._found)
