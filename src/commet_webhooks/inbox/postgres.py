"""The inbox in PostgreSQL: every worker on every machine, one table.

Same driver as :class:`~commet_webhooks.stores.postgres.PostgresStore` — connection
pools (sync and per event loop), a deadline of ``timeout`` seconds on every call that
holds on a dead network, outage -> ``StoreUnavailableError`` -> 503, times from the
server's clock — with the inbox's table and statements.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

try:
    import psycopg
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.inbox.postgres", "postgres", exc) from exc

from ..stores._base import DEFAULT_LEASE_SECONDS, Op
from ..stores._sql import DEFAULT_PURGE_INTERVAL
from ..stores.postgres import PostgresStore, _ident, _short
from ._model import DEFAULT_KEEP
from ._store import DEFAULT_INBOX_TABLE, InboxDialect, InboxStore

__all__ = ["PostgresInbox", "migrate"]

_DIALECT = InboxDialect(
    time="timestamptz",
    blob="bytea",
    now="clock_timestamp()",
    lease_end="clock_timestamp() + make_interval(secs => %(lease)s)",
    cutoff="clock_timestamp() - make_interval(secs => %(retention)s)",
    param="%({})s",
)


def migrate(
    dsn: str, *, table: str = DEFAULT_INBOX_TABLE, schema: str | None = None, timeout: float = 3.0
) -> None:
    """Create the schema (if given) and the inbox's tables now; safe to repeat."""
    inbox = PostgresInbox(dsn, table=table, schema=schema, timeout=timeout)
    try:
        inbox.migrate()
    finally:
        inbox.close()


class PostgresInbox(InboxStore, PostgresStore):
    """Every verified event in a PostgreSQL table, claimed and kept.

    ``keep`` (``timedelta`` or seconds, 30 days by default) is how long an event stays
    after it was received; ``dead_after`` turns an event that failed that many attempts
    into ``dead``. The other options are :class:`PostgresStore`'s.
    """

    def __init__(
        self,
        dsn: str,
        *,
        keep: timedelta | float = DEFAULT_KEEP,
        dead_after: int | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        table: str = DEFAULT_INBOX_TABLE,
        schema: str | None = None,
        timeout: float = 3.0,
        max_connections: int = 10,
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
        create_table: bool = True,
    ) -> None:
        super().__init__(
            dsn,
            lease_seconds=lease_seconds,
            table=table,
            schema=schema,
            timeout=timeout,
            max_connections=max_connections,
            purge_interval=purge_interval,
            create_table=create_table,
        )
        self._setup_inbox(keep, dead_after)
        self._dialect = _DIALECT
        prefix = "" if schema is None else f"{_ident(schema)}."
        self._table_quoted = prefix + _ident(table)
        resources = prefix + _ident(table + "_resources")
        self._sql = _DIALECT.statements(self._table_quoted, resources)
        lock = zlib.crc32(f"commet_webhooks:inbox:{schema}.{table}".encode())
        self._sql[Op.PREPARE] = "; ".join(
            [
                f"SELECT pg_advisory_xact_lock({lock})",
                *([f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}"] if schema else []),
                *_DIALECT.schema(self._table_quoted, resources, _ident(table + "_received_at")),
            ]
        )

    def __repr__(self) -> str:
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return f"PostgresInbox({self._where!r}, table={name!r}, keep={self.keep_seconds:g}s)"

    @property
    def location(self) -> str:
        return f"postgresql:{self._where}#{self.schema or ''}.{self.table}"

    @property
    def _table_sql(self) -> str:
        return self._table_quoted

    def _db_key(self, key: str) -> str:
        return _short(key)

    def _db_time(self, moment: datetime) -> Any:
        return moment

    def _py_time(self, value: Any) -> datetime:
        moment: datetime = value
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)

    def _statement(self, step: Any) -> tuple[Any, str, dict[str, Any] | None]:
        op, sql, values = self._values(step)
        if op is Op.PREPARE:
            return op, sql, None  # several statements: the simple query protocol
        values["key"] = _short(values["key"])
        values["lease"] = self.lease_seconds
        values["retention"] = self.keep_seconds
        return op, sql, values

    def _execute(self, conn: psycopg.Connection[Any], step: Any) -> Any:
        op, sql, params = self._statement(step)
        cursor = conn.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        return self._inbox_result(op, rows, self._found)

    async def _aexecute(self, conn: psycopg.AsyncConnection[Any], step: Any) -> Any:
        op, sql, params = self._statement(step)
        cursor = await conn.execute(sql, params)
        rows = await cursor.fetchall() if cursor.description else []
        return self._inbox_result(op, rows, self._found)
