"""PostgreSQL idempotency store: exactly-once handling across processes and machines.

One row per event key in a table created on first use (or ahead of time with
:func:`migrate`). A claim is one atomic ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
expired`` statement, so two workers can never both own a key, and a lease or
retention that has run out is taken over by the next claim. Times come from the
database server's clock, so workers on machines with skewed clocks still agree.
Completing, releasing and renewing match the owner token in their ``WHERE`` clause.

Requires psycopg 3 and psycopg_pool (``pip install commet-webhooks[postgres]``). The
synchronous methods use a ``psycopg_pool.ConnectionPool`` and the async methods an
``AsyncConnectionPool`` per event loop, so ``Webhooks.handle`` never blocks its loop on
the database. Each pool opens at most ``max_connections`` connections.

Every call has a deadline of ``timeout`` seconds that holds on a dead network and under
locks: the server cancels a statement (``statement_timeout``) or a lock wait
(``lock_timeout``) that runs longer, the kernel drops a connection whose data stays
unacknowledged (``tcp_user_timeout``, keepalives), and when none of that answers in
time (a black-holed link) the connection is cut on the client side and discarded.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

try:
    import psycopg
    import psycopg_pool
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.stores.postgres", "postgres", exc) from exc

from ..errors import StoreUnavailableError
from ._base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    WATCHDOG,
    ForkGuard,
    Op,
    PerLoop,
    Step,
    Steps,
    T,
    adrive,
    cut,
    drive,
    in_store_thread,
    unavailable,
)
from ._sql import DEFAULT_PURGE_INTERVAL, DEFAULT_TABLE, Dialect, SqlStore

__all__ = ["DEFAULT_TABLE", "PostgresStore", "migrate"]

logger = logging.getLogger("commet_webhooks.stores.postgres")

# Longer keys are stored as their SHA-256 (an index entry must fit in a third of a page).
_MAX_KEY = 256
# Times come from the server's clock, so workers with skewed clocks still agree.
_DIALECT = Dialect(
    time_type="timestamptz",
    now="clock_timestamp()",
    lease_end="clock_timestamp() + make_interval(secs => %(lease)s)",
    retention_end="clock_timestamp() + make_interval(secs => %(retention)s)",
    param="%({})s",
)
# The share of ``timeout`` after which the server cancels a statement or a lock wait.
_SERVER_SHARE = 0.8
# Idle pooled connections are probed by the kernel after this long (seconds).
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def migrate(
    dsn: str, *, table: str = DEFAULT_TABLE, schema: str | None = None, timeout: float = 3.0
) -> None:
    """Create the schema (if given), table and index a :class:`PostgresStore` uses.

    Safe to run any number of times, from several processes at once. Stores also do
    it on first use unless created with ``create_table=False``.
    """
    store = PostgresStore(dsn, table=table, schema=schema, timeout=timeout)
    try:
        store.migrate()
    finally:
        store.close()


class PostgresStore(SqlStore):
    """Keys in a PostgreSQL table shared by every worker on every machine.

    ``dsn`` is a libpq connection string or URL (``postgresql://user:pw@host/db``).
    ``table`` and ``schema`` name the table (``schema=None`` follows the
    ``search_path``). ``timeout`` bounds each call (waiting for a connection, locks,
    statements, a silent network) so an unreachable, locked or frozen server answers
    503 within about ``timeout`` instead of hanging the request. Connecting is bounded
    by libpq's ``connect_timeout``, which counts whole seconds (at least 2).
    """

    def __init__(
        self,
        dsn: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        timeout: float = 3.0,
        max_connections: int = 10,
        purge_interval: float = DEFAULT_PURGE_INTERVAL,
        create_table: bool = True,
    ) -> None:
        super().__init__(table, logger, lease_seconds, retention_seconds, purge_interval)
        if not table or (schema is not None and not schema):
            raise ValueError("table and schema must be non-empty names")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if not (isinstance(max_connections, int) and max_connections > 0):
            raise ValueError("max_connections must be a positive integer")
        params = _parse_dsn(dsn)
        if params is None:
            # Raised outside the except block: the psycopg error quotes the DSN
            # (password included) and must not ride along as __context__.
            raise ValueError("dsn is not a valid PostgreSQL connection string")
        self._dsn = dsn  # may hold a password: never shown
        self.schema = schema
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._where = " ".join(
            f"{name}={params[name]!s}" for name in ("host", "port", "dbname") if name in params
        )
        password = str(params.get("password") or "")
        self._secrets = [password] if password else []
        self._connect_args = _connect_args(params, self.timeout)
        self._ready = not create_table

        t = _ident(table) if schema is None else f"{_ident(schema)}.{_ident(table)}"
        lock = zlib.crc32(f"commet_webhooks:{schema}.{table}".encode())
        self._sql = _DIALECT.statements(t)
        # One simple query runs as one transaction: the advisory lock lets many workers
        # starting at once create the table without tripping over each other.
        self._sql[Op.PREPARE] = "; ".join(
            [
                f"SELECT pg_advisory_xact_lock({lock})",
                *([f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}"] if schema else []),
                *_DIALECT.schema(t, _ident(f"{table}_expires_at")),
            ]
        )

        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        # psycopg.AsyncConnections belong to the loop that opened them.
        self._apools: PerLoop[psycopg_pool.AsyncConnectionPool[Any]] = PerLoop()
        self._fork = ForkGuard()

    def __repr__(self) -> str:
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return (
            f"PostgresStore({self._where!r}, table={name!r}, "
            f"lease_seconds={self.lease_seconds:g}, retention_seconds={self.retention_seconds:g})"
        )

    def migrate(self) -> None:
        """Create the schema (if any), table and index now; see :func:`migrate`."""
        self._ready = False
        self._run(_no_steps)

    def close(self) -> None:
        """Close the synchronous pool (async ones: :meth:`aclose`); reopened on next use."""
        self._forget_parent()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=self.timeout)

    async def aclose(self) -> None:
        """Close the running loop's async pool and the synchronous one."""
        self._forget_parent()
        pool = self._apools.pop_current()
        if pool is not None:
            await pool.close(timeout=self.timeout)
        await in_store_thread(self.close)

    # ------------------------------------------------------------ drivers

    def _run(self, make_steps: Callable[[], Steps[T]]) -> T:
        pool = self._sync_pool()
        use = _Use(self)
        while use.again():
            try:
                conn = pool.getconn(timeout=use.left())
            except psycopg_pool.PoolTimeout as exc:
                self._unavailable(exc)
            try:
                with use.watching(conn):
                    steps = self._prepared(make_steps())
                    use.result = drive(steps, partial(self._execute, conn))
            finally:
                pool.putconn(conn)
        done: T = use.result
        return done

    async def _arun(self, make_steps: Callable[[], Steps[T]]) -> T:
        pool = await self._async_pool()
        use = _Use(self)
        while use.again():
            try:
                aconn = await pool.getconn(timeout=use.left())
            except psycopg_pool.PoolTimeout as exc:
                self._unavailable(exc)
            try:
                with use.watching(aconn):
                    asteps = self._prepared(make_steps())
                    use.result = await adrive(asteps, partial(self._aexecute, aconn))
            finally:
                await pool.putconn(aconn)
        done: T = use.result
        return done

    def _prepared(self, steps: Steps[T]) -> Steps[T]:
        """``steps``, after creating the table if this store has not seen it yet."""
        if not self._ready:
            yield Op.PREPARE, "", ""
        return (yield from steps)

    def _execute(self, conn: psycopg.Connection[Any], step: Step) -> Any:
        op, key, owner = step
        cursor = conn.execute(self._sql[op], self._params(op, key, owner))
        return self._found(op, cursor.fetchall() if cursor.description else [])

    async def _aexecute(self, conn: psycopg.AsyncConnection[Any], step: Step) -> Any:
        op, key, owner = step
        cursor = await conn.execute(self._sql[op], self._params(op, key, owner))
        return self._found(op, await cursor.fetchall() if cursor.description else [])

    def _params(self, op: Op, key: str, owner: str) -> dict[str, Any] | None:
        if op is Op.PREPARE:
            return None  # several statements: only the simple query protocol runs them
        return {
            "key": _short(key),
            "owner": owner,
            "lease": self.lease_seconds,
            "retention": self.retention_seconds,
        }

    # ------------------------------------------------------------ pools

    def _forget_parent(self) -> None:
        """After fork(): leave the parent's pools alone and start afresh."""
        if self._fork.forked(lambda: self._pool, lambda: self._apools):
            self._pool, self._apools = None, PerLoop()
            self._lock = threading.Lock()

    def _pool_options(self) -> dict[str, Any]:
        return {
            "kwargs": self._connect_args,
            "min_size": 0,
            "max_size": self.max_connections,
            "timeout": self.timeout,
            # Give up reconnecting soon, so the next call after an outage tries at once
            # instead of waiting out a long backoff.
            "reconnect_timeout": self.timeout,
            "open": False,
        }

    def _sync_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        self._forget_parent()
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = psycopg_pool.ConnectionPool(self._dsn, **self._pool_options())
                    self._pool.open()
                pool = self._pool
        return pool

    async def _async_pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        self._forget_parent()
        pool, new = self._apools.current(
            lambda: psycopg_pool.AsyncConnectionPool(self._dsn, **self._pool_options())
        )
        if new:
            await pool.open()
        return pool

    # ------------------------------------------------------------ errors

    def _unavailable(self, exc: BaseException, expired: bool = False) -> NoReturn:
        if isinstance(exc, psycopg.errors.UndefinedTable):
            self._ready = False  # dropped behind our back: create it again next time
        store = f"PostgreSQL idempotency store ({self._where})"
        if expired:
            raise StoreUnavailableError(
                f"{store} unavailable: no answer within {self.timeout:g}s"
            ) from exc
        raise unavailable(store, exc, self._secrets) from exc


class _Use:
    """One call's connections under its deadline: which to retry, what to raise.

    A connection that breaks at once (the server dropped an idle pooled connection)
    is replaced while time is left; one that does not answer by the deadline is cut
    (so the blocked call fails) and discarded; a server error (a lock or statement
    timeout) leaves the connection healthy and ends the call.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.deadline = time.monotonic() + store.timeout
        self.result: Any = None
        self.done = False
        self.tries = 0
        self.error: psycopg.Error | None = None
        self.expired = False  # the deadline cut the connection
        self.retry = False  # the connection broke at once: worth another

    def left(self) -> float:
        return max(0.001, self.deadline - time.monotonic())

    def again(self) -> bool:
        """Whether to (re)try on another connection; raises when the call failed."""
        if self.done:
            return False
        if self.error is not None:
            retry = self.retry and self.tries <= self.store.max_connections
            if not retry or time.monotonic() >= self.deadline:
                self.store._unavailable(self.error, self.expired)
        self.tries += 1
        return True

    def watching(self, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> _Watch:
        return _Watch(self, conn)


class _Watch:
    """The deadline armed on one checked-out connection, and what its end means."""

    def __init__(
        self, use: _Use, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
    ) -> None:
        self.use = use
        self.conn = conn
        fileno = conn.pgconn.socket
        self.token = WATCHDOG.arm(use.deadline, lambda: cut(fileno))

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> bool:
        expired = not WATCHDOG.disarm(self.token)
        server_error = isinstance(exc, psycopg.Error) and not self.conn.broken
        if expired or (exc is not None and not server_error):
            self.conn.pgconn.finish()  # cut, broken or interrupted: the pool discards it
        if exc is None:
            self.use.done = True
            return False
        if not isinstance(exc, psycopg.Error):
            return False  # cancelled or interrupted: propagate
        self.use.error, self.use.expired = exc, expired
        self.use.retry = not expired and not server_error
        return True


def _no_steps() -> Steps[None]:
    return None
    yield  # a generator that runs no statement


def _connect_args(params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """libpq settings that bound connecting, statements, lock waits and a silent peer.

    The server gives up on a statement or a lock wait a little before the call's own
    deadline: it then answers with an error over a healthy connection (kept for reuse),
    and a statement whose connection was cut cannot run on for long behind it.
    """
    ms = max(1, math.ceil(timeout * 1000))
    server_ms = max(1, math.floor(timeout * _SERVER_SHARE * 1000))
    limits = f"-c statement_timeout={server_ms} -c lock_timeout={server_ms}"
    args: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": max(2, math.ceil(timeout)),
        "options": f"{params['options']} {limits}" if params.get("options") else limits,
    }
    if "tcp_user_timeout" not in params:
        args["tcp_user_timeout"] = ms
    if not any(name in params for name in _KEEPALIVE):
        args.update(_KEEPALIVE)
    return args


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _short(key: str) -> str:
    """``key``, or its digest when too long for a btree index entry."""
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _parse_dsn(dsn: str) -> dict[str, Any] | None:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error:
        return None
