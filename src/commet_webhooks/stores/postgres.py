"""PostgreSQL idempotency store: exactly-once handling across processes and machines.

One row per event key in a table created on first use (or ahead of time with
:func:`migrate`). A claim is one atomic ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
expired`` statement, so two workers can never both own a key, and a lease or
retention that has run out is taken over by the next claim. Times come from the
database server's clock, so workers on machines with skewed clocks still agree.
Completing and releasing match the owner token in their ``WHERE`` clause.

Requires psycopg 3 (``pip install commet-webhooks[postgres]``). The synchronous
methods use ``psycopg.Connection`` and the async methods ``psycopg.AsyncConnection``
(kept per event loop), so ``Webhooks.handle`` never blocks its loop on the database.
Each side opens at most ``max_connections`` connections and keeps them for reuse.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Generator
from typing import Any, NoReturn, TypeVar

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.stores.postgres", "postgres", exc) from exc

from ..errors import StoreUnavailableError
from ._base import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_RETENTION_SECONDS,
    Claim,
    IdempotencyStore,
    unavailable,
)

__all__ = ["DEFAULT_TABLE", "PostgresStore", "migrate"]

logger = logging.getLogger("commet_webhooks.stores.postgres")

DEFAULT_TABLE = "commet_webhook_keys"
#: How often (seconds) a store instance deletes expired rows while claiming.
DEFAULT_PURGE_INTERVAL = 300.0
# A key that vanishes between "take" and "look" (released, expired) is retried this often.
_ATTEMPTS = 3
# Longer keys are stored as their SHA-256 (an index entry must fit in a third of a page).
_MAX_KEY = 256

T = TypeVar("T")
Rows = list[tuple[Any, ...]]
# A store operation as a series of statements: it yields (query, params), receives
# the rows, and returns its result. The sync and async drivers run the same steps.
Steps = Generator[tuple[sql.Composed, tuple[Any, ...]], Rows, T]


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


class PostgresStore(IdempotencyStore):
    """Keys in a PostgreSQL table shared by every worker on every machine.

    ``dsn`` is a libpq connection string or URL (``postgresql://user:pw@host/db``).
    ``table`` and ``schema`` name the table (``schema=None`` follows the
    ``search_path``). ``timeout`` bounds connecting (libpq counts whole seconds, at
    least 2) so an unreachable server answers 503 instead of hanging the request.
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
        super().__init__(lease_seconds=lease_seconds, retention_seconds=retention_seconds)
        if not table or (schema is not None and not schema):
            raise ValueError("table and schema must be non-empty names")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if not (isinstance(max_connections, int) and max_connections > 0):
            raise ValueError("max_connections must be a positive integer")
        if not purge_interval > 0:
            raise ValueError("purge_interval must be positive")
        params = _parse_dsn(dsn)
        if params is None:
            # Raised outside the except block: the psycopg error quotes the DSN
            # (password included) and must not ride along as __context__.
            raise ValueError("dsn is not a valid PostgreSQL connection string")
        self._dsn = dsn  # may hold a password: never shown
        self.table = table
        self.schema = schema
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self.purge_interval = float(purge_interval)
        self._where = " ".join(
            f"{name}={params[name]!s}" for name in ("host", "port", "dbname") if name in params
        )
        password = str(params.get("password") or "")
        self._secrets = [password] if password else []
        self._connect_args: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.timeout)),
        }
        self._ready = not create_table
        self._next_purge = 0.0

        t = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        self._q_schema: list[sql.Composed] = [
            sql.SQL("SELECT pg_advisory_xact_lock({})").format(
                sql.Literal(zlib.crc32(f"commet_webhooks:{schema}.{table}".encode()))
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "key text PRIMARY KEY, owner text, expires_at timestamptz NOT NULL)"
            ).format(t),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (expires_at)").format(
                sql.Identifier(f"{table}_expires_at"), t
            ),
        ]
        if schema:
            self._q_schema.insert(
                1, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
        # Insert, or take over a row whose lease or retention has run out.
        self._q_claim = sql.SQL(
            "INSERT INTO {} AS k (key, owner, expires_at) "
            "VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, "
            "expires_at = EXCLUDED.expires_at WHERE k.expires_at <= clock_timestamp() "
            "RETURNING true"
        ).format(t)
        self._q_inspect = sql.SQL(
            "SELECT owner IS NULL FROM {} WHERE key = %s AND expires_at > clock_timestamp()"
        ).format(t)
        self._q_complete = sql.SQL(
            "UPDATE {} SET owner = NULL, expires_at = clock_timestamp() "
            "+ make_interval(secs => %s) WHERE key = %s AND owner = %s RETURNING true"
        ).format(t)
        self._q_release = sql.SQL(
            "DELETE FROM {} WHERE key = %s AND owner = %s RETURNING true"
        ).format(t)
        self._q_purge = sql.SQL(
            "DELETE FROM {} WHERE expires_at <= clock_timestamp() RETURNING true"
        ).format(t)

        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pid = os.getpid()
        # Connections inherited through fork(): never used, never closed (closing would
        # end the parent's sessions), only kept from being garbage collected.
        self._inherited: list[object] = []
        # psycopg.AsyncConnections belong to the loop that opened them.
        self._loops: dict[asyncio.AbstractEventLoop, _LoopPool] = {}

    def __repr__(self) -> str:
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return (
            f"PostgresStore({self._where!r}, table={name!r}, "
            f"lease_seconds={self.lease_seconds:g}, retention_seconds={self.retention_seconds:g})"
        )

    # ------------------------------------------------------------ operations

    def _claim_steps(self, key: str, owner: str) -> Steps[Claim]:
        key = _short(key)
        if time.monotonic() >= self._next_purge:
            yield from self._purge_steps()
        for _ in range(_ATTEMPTS):
            if (yield self._q_claim, (key, owner, self.lease_seconds)):
                return Claim.CLAIMED
            rows = yield self._q_inspect, (key,)
            if rows:
                return Claim.DONE if rows[0][0] else Claim.BUSY
        return Claim.BUSY

    def _complete_steps(self, key: str, owner: str) -> Steps[bool]:
        return bool((yield self._q_complete, (self.retention_seconds, _short(key), owner)))

    def _release_steps(self, key: str, owner: str) -> Steps[bool]:
        return bool((yield self._q_release, (_short(key), owner)))

    def _purge_steps(self) -> Steps[int]:
        self._next_purge = time.monotonic() + self.purge_interval
        count = len((yield self._q_purge, ()))
        if count:
            logger.debug("purged %d expired idempotency keys", count)
        return count

    # ------------------------------------------------------------ sync

    def claim(self, key: str, owner: str) -> Claim:
        return self._run(lambda: self._claim_steps(key, owner))

    def complete(self, key: str, owner: str) -> bool:
        return self._run(lambda: self._complete_steps(key, owner))

    def release(self, key: str, owner: str) -> bool:
        return self._run(lambda: self._release_steps(key, owner))

    def purge(self) -> int:
        """Delete every expired lease and every done key past its retention now.

        Claims do this on their own every ``purge_interval`` seconds; call it from a
        scheduled job if the receiver is idle for long stretches. Returns the count.
        """
        return self._run(self._purge_steps)

    def migrate(self) -> None:
        """Create the schema (if any), table and index now; see :func:`migrate`."""
        try:
            with self._connect() as conn:
                self._create(conn)
        except psycopg.Error as exc:
            self._unavailable(exc)

    def close(self) -> None:
        """Close idle synchronous connections (async ones: :meth:`aclose`)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _run(self, make_steps: Callable[[], Steps[T]]) -> T:
        self._forget_parent()
        if not self._slots.acquire(timeout=self.timeout):
            self._all_busy()
        try:
            for attempt in range(2):
                conn, reused = self._checkout(fresh=attempt > 0)
                try:
                    if not self._ready:
                        self._create(conn)
                    result = _drive(conn, make_steps())
                except BaseException as exc:
                    conn.close()
                    if isinstance(exc, psycopg.OperationalError) and reused and attempt == 0:
                        continue  # an idle connection the server dropped: try a new one
                    if isinstance(exc, psycopg.Error):
                        self._unavailable(exc)
                    raise
                with self._lock:
                    self._idle.append(conn)
                return result
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def _forget_parent(self) -> None:
        """After fork(): leave the parent's connections alone and start afresh."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._inherited += [self._idle, self._loops]
                self._idle, self._loops = [], {}
                self._slots = threading.BoundedSemaphore(self.max_connections)
                self._pid = os.getpid()

    def _checkout(self, *, fresh: bool) -> tuple[psycopg.Connection[Any], bool]:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        try:
            return self._connect(), False
        except psycopg.Error as exc:
            self._unavailable(exc)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(self._dsn, **self._connect_args)

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            for query in self._q_schema:
                conn.execute(query)
        self._ready = True

    # ------------------------------------------------------------ async

    async def aclaim(self, key: str, owner: str) -> Claim:
        return await self._arun(lambda: self._claim_steps(key, owner))

    async def acomplete(self, key: str, owner: str) -> bool:
        return await self._arun(lambda: self._complete_steps(key, owner))

    async def arelease(self, key: str, owner: str) -> bool:
        return await self._arun(lambda: self._release_steps(key, owner))

    async def aclose(self) -> None:
        """Close the running loop's idle async connections and the sync ones."""
        pool = self._loops.pop(asyncio.get_running_loop(), None)
        for conn in pool.idle if pool is not None else []:
            await conn.close()
        await asyncio.to_thread(self.close)

    async def _arun(self, make_steps: Callable[[], Steps[T]]) -> T:
        self._forget_parent()
        pool = self._loop_pool()
        try:
            await asyncio.wait_for(pool.slots.acquire(), self.timeout)
        except asyncio.TimeoutError:
            self._all_busy()
        try:
            for attempt in range(2):
                conn, reused = await self._acheckout(pool, fresh=attempt > 0)
                try:
                    if not self._ready:
                        async with conn.transaction():
                            for query in self._q_schema:
                                await conn.execute(query)
                        self._ready = True
                    result = await _adrive(conn, make_steps())
                except BaseException as exc:
                    await _aclose_quietly(conn)
                    if isinstance(exc, psycopg.OperationalError) and reused and attempt == 0:
                        continue
                    if isinstance(exc, psycopg.Error):
                        self._unavailable(exc)
                    raise
                pool.idle.append(conn)
                return result
            raise AssertionError("unreachable")
        finally:
            pool.slots.release()

    def _loop_pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._loops.get(loop)
        if pool is None:
            for stale in [other for other in list(self._loops) if other.is_closed()]:
                self._loops.pop(stale, None)
            pool = self._loops[loop] = _LoopPool(self.max_connections)
        return pool

    async def _acheckout(
        self, pool: _LoopPool, *, fresh: bool
    ) -> tuple[psycopg.AsyncConnection[Any], bool]:
        if pool.idle and not fresh:
            return pool.idle.pop(), True
        try:
            return await psycopg.AsyncConnection.connect(self._dsn, **self._connect_args), False
        except psycopg.Error as exc:
            self._unavailable(exc)

    # ------------------------------------------------------------ errors

    def _all_busy(self) -> NoReturn:
        raise StoreUnavailableError(
            f"PostgreSQL idempotency store ({self._where}) unavailable: all "
            f"{self.max_connections} connections stayed busy for {self.timeout:g}s"
        )

    def _unavailable(self, exc: BaseException) -> NoReturn:
        if isinstance(exc, psycopg.errors.UndefinedTable):
            self._ready = False  # dropped behind our back: create it again next time
        raise unavailable(
            f"PostgreSQL idempotency store ({self._where})", exc, self._secrets
        ) from exc


class _LoopPool:
    """One event loop's idle async connections and its limit on open ones."""

    def __init__(self, size: int) -> None:
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)


def _short(key: str) -> str:
    """``key``, or its digest when too long for a btree index entry."""
    if len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _drive(conn: psycopg.Connection[Any], steps: Steps[T]) -> T:
    try:
        query, params = next(steps)
        while True:
            query, params = steps.send(conn.execute(query, params).fetchall())
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _adrive(conn: psycopg.AsyncConnection[Any], steps: Steps[T]) -> T:
    try:
        query, params = next(steps)
        while True:
            cursor = await conn.execute(query, params)
            query, params = steps.send(await cursor.fetchall())
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _aclose_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except Exception:  # already broken; nothing left to release
        logger.debug("closing a broken connection failed", exc_info=True)


def _parse_dsn(dsn: str) -> dict[str, Any] | None:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error:
        return None
