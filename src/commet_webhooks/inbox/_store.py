"""The inbox as an idempotency store: one row per event, claimed with its body.

The inbox runs the stores' claim / complete / release / renew protocol (the shared
steps of :mod:`commet_webhooks.stores._base`) on a table whose rows carry the event
as well as the lease, so recording an event costs no second write: the claim *is*
the record. The backends reuse the SQL stores' drivers (connections, pools,
deadlines, fork safety, outage -> ``StoreUnavailableError`` -> 503) and only swap the
statements.

A row: the key (event id, else the body's SHA-256), the envelope's id, type,
timestamp, organization, mode and API version, when it was received, the body as
signed and its signature header, a status (see :class:`~._model.Status`), the
lease owner and its end, how many attempts ran, the last error and when the last
attempt ended. Leases live in ``lease_until``; a failed delivery keeps its row
(status ``failed``) and is taken again by Commet's retry or by a replay.
"""

from __future__ import annotations

# ruff: noqa: S608 - identifiers are quoted by the backends; every value is a parameter
import builtins
import enum
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from ..stores._base import Claim, Op, SteppedStore, Steps, T
from ._model import FINISHED, EventRecord, Filter, Status, keep_seconds

if TYPE_CHECKING:
    from .._admission import Admitted
    from .._offload import OffloadedDelivery

__all__ = ["DEFAULT_INBOX_TABLE", "IOp", "InboxDialect", "InboxStore"]

DEFAULT_INBOX_TABLE = "commet_webhook_inbox"

_SECRETS = re.compile(r"(whsec_|ck_|sk_)[A-Za-z0-9_\-+/=.]+")


class IOp(enum.Enum):
    """The inbox's own primitives, beside the stores' :class:`Op`."""

    FAIL = "release_failed"  # owner's claim -> failed (or dead) with the error -> bool
    RECORD = "record"  # insert a row that is not there yet -> bool
    REOPEN = "reopen"  # a finished row -> received, for a forced replay -> bool
    MARK_STALE = "mark_stale"  # the ordering guard skipped the event -> bool
    OBSERVE = "observe"  # resource's newest timestamp, raised to this event's -> newest
    NEWEST = "newest"  # resource's newest timestamp -> value or None
    QUERY = "query"  # rows (dynamic SQL) -> rows
    DELETE = "delete"  # delete rows (dynamic SQL) -> count


#: ``(op, key, owner, values)``: a step carrying values for its statement.
InboxStep = tuple[Any, str, str, dict[str, Any]]

_COLUMNS = (
    "key, event_id, event_type, event_time, organization_id, mode, api_version, received_at, "
    "status, attempts, last_error, handled_at, untyped, signature, body IS NOT NULL"
)
_LIVE = "(status = 'processing' AND lease_until > {now})"

# {t}: table, {r}: resources table, {i}: index-name prefix; {now}, {lease_end},
# {cutoff} are the dialect's times; {p[name]} a named parameter.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {t} (key text PRIMARY KEY, event_id text, "
    "event_type text NOT NULL DEFAULT '', event_time {time}, organization_id text, "
    "mode text, api_version text, received_at {time} NOT NULL, body {blob}, signature text, "
    "untyped integer NOT NULL DEFAULT 0, status text NOT NULL, owner text, "
    "lease_until {time}, attempts integer NOT NULL DEFAULT 0, last_error text, "
    "handled_at {time}, stale integer NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS {i} ON {t} (received_at)",
    "CREATE TABLE IF NOT EXISTS {r} (resource text PRIMARY KEY, newest {time} NOT NULL, key text)",
)

_RECORD_VALUES = (
    "({p[key]}, {p[event_id]}, {p[event_type]}, {p[event_time]}, {p[organization_id]}, "
    "{p[mode]}, {p[api_version]}, {now}, {p[body]}, {p[signature]}, {p[untyped]}, "
)

STATEMENTS: dict[Any, str] = {
    # Insert the event under a lease, or take a row that is free to run: never run,
    # failed, or its lease ran out. Done and skipped rows stay done.
    Op.TAKE: "INSERT INTO {t} AS k (key, event_id, event_type, event_time, organization_id, "
    "mode, api_version, received_at, body, signature, untyped, status, owner, lease_until, "
    "attempts) VALUES " + _RECORD_VALUES + "'processing', {p[owner]}, {lease_end}, 1) "
    "ON CONFLICT (key) DO UPDATE SET status = 'processing', owner = excluded.owner, "
    "lease_until = excluded.lease_until, attempts = k.attempts + 1, stale = 0, "
    "body = COALESCE(k.body, excluded.body), "
    "signature = COALESCE(k.signature, excluded.signature), "
    "event_id = COALESCE(k.event_id, excluded.event_id), "
    "event_time = COALESCE(k.event_time, excluded.event_time), "
    "event_type = CASE WHEN excluded.event_type = '' THEN k.event_type "
    "ELSE excluded.event_type END, "
    "untyped = CASE WHEN excluded.body IS NULL THEN k.untyped ELSE excluded.untyped END "
    "WHERE k.status IN ('received', 'failed', 'dead') "
    "OR (k.status = 'processing' AND (k.lease_until IS NULL OR k.lease_until <= {now})) "
    "RETURNING 1",
    Op.LOOK: "SELECT status, " + _LIVE + " FROM {t} WHERE key = {p[key]}",
    Op.FINISH: "UPDATE {t} SET status = CASE WHEN stale = 1 THEN 'skipped' ELSE 'done' END, "
    "owner = NULL, lease_until = NULL, handled_at = {now}, last_error = NULL "
    "WHERE key = {p[key]} AND owner = {p[owner]} RETURNING 1",
    Op.FREE: "UPDATE {t} SET status = 'received', owner = NULL, lease_until = NULL "
    "WHERE key = {p[key]} AND owner = {p[owner]} RETURNING 1",
    Op.EXTEND: "UPDATE {t} SET lease_until = {lease_end} WHERE key = {p[key]} "
    "AND owner = {p[owner]} AND " + _LIVE + " RETURNING 1",
    Op.PURGE: "DELETE FROM {t} WHERE received_at <= {cutoff} AND NOT " + _LIVE + " RETURNING 1",
    IOp.FAIL: "UPDATE {t} SET status = CASE WHEN {p[dead_after]} > 0 "
    "AND attempts >= {p[dead_after]} THEN 'dead' ELSE 'failed' END, owner = NULL, "
    "lease_until = NULL, last_error = {p[error]}, handled_at = {now} "
    "WHERE key = {p[key]} AND owner = {p[owner]} RETURNING 1",
    IOp.RECORD: "INSERT INTO {t} (key, event_id, event_type, event_time, organization_id, "
    "mode, api_version, received_at, body, signature, untyped, status, last_error, "
    "handled_at) VALUES " + _RECORD_VALUES + "{p[status]}, CAST({p[error]} AS text), "
    "CASE WHEN CAST({p[error]} AS text) IS NULL THEN NULL ELSE {now} END) "
    "ON CONFLICT (key) DO NOTHING RETURNING 1",
    IOp.REOPEN: "UPDATE {t} SET status = 'received', owner = NULL, lease_until = NULL "
    "WHERE key = {p[key]} AND NOT " + _LIVE + " AND body IS NOT NULL RETURNING 1",
    IOp.MARK_STALE: "UPDATE {t} SET stale = 1 WHERE key = {p[key]} AND status = 'processing' "
    "RETURNING 1",
    IOp.OBSERVE: "INSERT INTO {r} AS r (resource, newest, key) "
    "VALUES ({p[resource]}, {p[event_time]}, {p[key]}) ON CONFLICT (resource) DO UPDATE SET "
    "newest = CASE WHEN excluded.newest > r.newest THEN excluded.newest ELSE r.newest END, "
    "key = CASE WHEN excluded.newest > r.newest THEN excluded.key ELSE r.key END "
    "RETURNING newest",
    IOp.NEWEST: "SELECT newest FROM {r} WHERE resource = {p[resource]}",
}

_PARAMS = (
    "key", "owner", "event_id", "event_type", "event_time", "organization_id", "mode",
    "api_version", "body", "signature", "untyped", "status", "error", "dead_after",
    "resource",
)  # fmt: skip


@dataclass(frozen=True)
class InboxDialect:
    """How one database spells the inbox's open parts."""

    time: str  # column type of times
    blob: str  # column type of the body
    now: str
    lease_end: str
    cutoff: str  # now - keep
    param: str  # a named parameter, {} for the name

    def p(self, name: str) -> str:
        return self.param.format(name)

    def schema(self, table: str, resources: str, index: str) -> builtins.list[str]:
        return [
            s.format(t=table, r=resources, i=index, time=self.time, blob=self.blob) for s in SCHEMA
        ]

    def statements(self, table: str, resources: str) -> dict[Any, str]:
        names = {name: self.p(name) for name in _PARAMS}
        return {
            op: template.format(
                t=table,
                r=resources,
                now=self.now,
                lease_end=self.lease_end,
                cutoff=self.cutoff,
                p=names,
            )
            for op, template in STATEMENTS.items()
        }


def redact(text: str) -> str:
    """``text`` with anything shaped like a Commet secret or API key replaced."""
    return _SECRETS.sub(lambda m: m.group(1) + "***", text)


def _empty_payload() -> dict[str, Any]:
    return {
        "event_id": None,
        "event_type": "",
        "event_time": None,
        "organization_id": None,
        "mode": None,
        "api_version": None,
        "body": None,
        "signature": None,
        "untyped": 0,
    }


def _with_values(steps: Steps[T], op: Any, values: dict[str, Any]) -> Generator[Any, Any, T]:
    """``steps``, with ``values`` attached to each step of ``op``."""
    try:
        step = next(steps)
        while True:
            sent = (*step, values) if step[0] is op else step
            step = steps.send((yield sent))
    except StopIteration as stop:
        result: T = stop.value
        return result


def _one(op: Any, key: str = "", owner: str = "", **values: Any) -> Generator[Any, Any, Any]:
    return (yield op, key, owner, values)


class InboxStore(SteppedStore):
    """What the SQLite and PostgreSQL inboxes share (mixed in before their store class).

    Everything the stores do works unchanged; ``Webhooks`` sees an ``EventRecorder``
    and claims through :meth:`claim_event`, so the event is stored by the claim itself.
    """

    keep_seconds: float
    dead_after: int
    retention_seconds: float
    _dialect: InboxDialect
    _sql: dict[Any, str]

    def _setup_inbox(self, keep: timedelta | float, dead_after: int | None) -> None:
        self.keep_seconds = keep_seconds(keep)
        # The stores' retention (how long a done key dedupes) is the inbox's keep.
        self.retention_seconds = self.keep_seconds
        if dead_after is not None and (not isinstance(dead_after, int) or dead_after < 1):
            raise ValueError("dead_after must be a positive number of attempts or None")
        self.dead_after = dead_after or 0

    # ------------------------------------------------------------ hot path

    def claim_event(self, key: str, owner: str, admitted: Admitted) -> Claim:
        values = self._payload(admitted)
        return self._run(lambda: self._take_with(key, owner, values))

    async def aclaim_event(self, key: str, owner: str, admitted: Admitted) -> Claim:
        values = self._payload(admitted)
        return await self._arun(lambda: self._take_with(key, owner, values))

    def claim(self, key: str, owner: str) -> Claim:
        return self._run(lambda: self._take_with(key, owner, _empty_payload()))

    async def aclaim(self, key: str, owner: str) -> Claim:
        return await self._arun(lambda: self._take_with(key, owner, _empty_payload()))

    def release_failed(self, key: str, owner: str, error: str) -> bool:
        values = self._failure(error)
        return bool(self._run(lambda: _one(IOp.FAIL, key, owner, **values)))

    async def arelease_failed(self, key: str, owner: str, error: str) -> bool:
        values = self._failure(error)
        return bool(await self._arun(lambda: _one(IOp.FAIL, key, owner, **values)))

    def _take_with(self, key: str, owner: str, values: dict[str, Any]) -> Steps[Claim]:
        return cast("Steps[Claim]", _with_values(self._claim_steps(key, owner), Op.TAKE, values))

    def _failure(self, error: str) -> dict[str, Any]:
        return {"error": redact(error)[:2000], "dead_after": self.dead_after}

    def _payload(self, admitted: Admitted) -> dict[str, Any]:
        event = admitted.event
        return {
            "event_id": event.id,
            "event_type": event.event,
            "event_time": self._db_time(event.timestamp),
            "organization_id": event.organization_id,
            "mode": event.mode,
            "api_version": event.api_version,
            "body": admitted.body,
            "signature": admitted.signature,
            "untyped": 1 if admitted.schema_error is not None else 0,
        }

    # ------------------------------------------------------------ reading

    def get(self, key: str) -> EventRecord | None:
        """The event stored under ``key`` (its id), body included, or None."""
        sql, params = self._select(Filter(keys=(key,)), body=True)
        rows = self._run(lambda: _one(IOp.QUERY, sql=sql, **params))
        return self._record(rows[0], body=True) if rows else None

    async def aget(self, key: str) -> EventRecord | None:
        sql, params = self._select(Filter(keys=(key,)), body=True)
        rows = await self._arun(lambda: _one(IOp.QUERY, sql=sql, **params))
        return self._record(rows[0], body=True) if rows else None

    def list(self, selection: Filter | None = None) -> builtins.list[EventRecord]:
        """The events ``selection`` picks (bodies left out), oldest received first."""
        sql, params = self._select(selection or Filter())
        rows = self._run(lambda: _one(IOp.QUERY, sql=sql, **params))
        return [self._record(row) for row in rows]

    async def alist(self, selection: Filter | None = None) -> builtins.list[EventRecord]:
        sql, params = self._select(selection or Filter())
        rows = await self._arun(lambda: _one(IOp.QUERY, sql=sql, **params))
        return [self._record(row) for row in rows]

    def counts(self, selection: Filter | None = None) -> dict[Status, int]:
        """How many events ``selection`` picks, per status (``limit`` ignored)."""
        where, params = self._filter_sql(selection or Filter())
        sql = f"SELECT status, count(*) FROM {self._table_sql} {where} GROUP BY status"
        rows = self._run(lambda: _one(IOp.QUERY, sql=sql, **params))
        return {Status(status): int(n) for status, n in rows}

    async def acounts(self, selection: Filter | None = None) -> dict[Status, int]:
        where, params = self._filter_sql(selection or Filter())
        sql = f"SELECT status, count(*) FROM {self._table_sql} {where} GROUP BY status"
        rows = await self._arun(lambda: _one(IOp.QUERY, sql=sql, **params))
        return {Status(status): int(n) for status, n in rows}

    # ------------------------------------------------------------ writing

    def record(
        self,
        delivery: OffloadedDelivery | Admitted,
        *,
        status: Status | str = Status.RECEIVED,
        error: str | None = None,
    ) -> bool:
        """Store a delivery without running it (a dead letter, an import); False if present.

        The body is not verified here: it is verified when replayed. Use
        ``status="dead"`` and ``error=...`` for a task-queue worker's dead letter.
        """
        values = self._recorded(delivery, Status(status), error)
        key = values.pop("key")
        return bool(self._run(lambda: _one(IOp.RECORD, key, **values)))

    def reopen(self, key: str) -> bool:
        """Make a finished event runnable again (for a forced replay); False when it is
        missing, has no body, or is being handled right now."""
        return bool(self._run(lambda: _one(IOp.REOPEN, key)))

    async def areopen(self, key: str) -> bool:
        return bool(await self._arun(lambda: _one(IOp.REOPEN, key)))

    def prune(
        self,
        *,
        older_than: timedelta | float | None = None,
        status: Sequence[Status | str] = (),
    ) -> int:
        """Delete events received more than ``older_than`` ago (default: ``keep``).

        ``status`` restricts it to those statuses; an event under a live lease is never
        deleted. Returns how many were deleted.
        """
        sql, params = self._prune_sql(older_than, status)
        return int(self._run(lambda: _one(IOp.DELETE, sql=sql, **params)))

    def prune_plan(
        self,
        *,
        older_than: timedelta | float | None = None,
        status: Sequence[Status | str] = (),
    ) -> dict[Status, int]:
        """What :meth:`prune` would delete, per status, without deleting."""
        sql, params = self._prune_sql(older_than, status)
        sql = sql.replace("DELETE FROM", "SELECT status, count(*) FROM", 1)
        sql = sql.replace(" RETURNING 1", " GROUP BY status")
        rows = self._run(lambda: _one(IOp.QUERY, sql=sql, **params))
        return {Status(s): int(n) for s, n in rows}

    # ------------------------------------------------------------ ordering guard

    def observe(self, resource: str, moment: datetime, key: str) -> datetime:
        """Raise ``resource``'s newest timestamp to ``moment``; the newest after that."""
        values = {"resource": resource, "event_time": self._db_time(moment)}
        newest = self._run(lambda: _one(IOp.OBSERVE, key, **values))
        return self._py_time(newest[0][0])

    async def aobserve(self, resource: str, moment: datetime, key: str) -> datetime:
        values = {"resource": resource, "event_time": self._db_time(moment)}
        newest = await self._arun(lambda: _one(IOp.OBSERVE, key, **values))
        return self._py_time(newest[0][0])

    def newest(self, resource: str) -> datetime | None:
        rows = self._run(lambda: _one(IOp.NEWEST, resource=resource))
        return self._py_time(rows[0][0]) if rows else None

    async def anewest(self, resource: str) -> datetime | None:
        rows = await self._arun(lambda: _one(IOp.NEWEST, resource=resource))
        return self._py_time(rows[0][0]) if rows else None

    def mark_stale(self, key: str) -> bool:
        return bool(self._run(lambda: _one(IOp.MARK_STALE, key)))

    async def amark_stale(self, key: str) -> bool:
        return bool(await self._arun(lambda: _one(IOp.MARK_STALE, key)))

    # ------------------------------------------------------------ backend hooks

    @property
    def _table_sql(self) -> str:
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Where the inbox lives (no password): compares two handles on one inbox."""
        raise NotImplementedError

    def _db_key(self, key: str) -> str:
        """A key as the database stores it."""
        return key

    def _db_time(self, moment: datetime) -> Any:
        """A datetime as the database stores it."""
        raise NotImplementedError

    def _py_time(self, value: Any) -> datetime:
        raise NotImplementedError

    def _values(self, step: Any) -> tuple[Any, str, dict[str, Any]]:
        """``(op, sql, values)`` for a step of either kind."""
        op, key, owner = step[0], step[1], step[2]
        values: dict[str, Any] = {"key": key, "owner": owner}
        if len(step) > 3:
            values.update(step[3])
        sql = values.pop("sql", None) or self._sql[op]
        return op, sql, values

    def _inbox_result(
        self, op: Any, rows: builtins.list[Any], found: Callable[[Any, builtins.list[Any]], Any]
    ) -> Any:
        if op is IOp.QUERY or op is IOp.OBSERVE or op is IOp.NEWEST:
            return rows
        if op is IOp.DELETE:
            return len(rows)
        if isinstance(op, IOp):
            return bool(rows)
        if op is Op.LOOK:
            if not rows:
                return None
            status, live = rows[0]
            if Status(status) in FINISHED:
                return Claim.DONE
            return Claim.BUSY if status == Status.PROCESSING and live else None
        return found(op, rows)

    # ------------------------------------------------------------ SQL building

    def _filter_sql(self, selection: Filter) -> tuple[str, dict[str, Any]]:
        clauses: builtins.list[str] = []
        params: dict[str, Any] = {}
        p = self._dialect.p

        def one_of(column: str, values: Sequence[str], prefix: str) -> None:
            names = []
            for n, value in enumerate(values):
                params[f"{prefix}{n}"] = value
                names.append(p(f"{prefix}{n}"))
            clauses.append(f"{column} IN ({', '.join(names)})")

        if selection.keys:
            # No database keeps a NUL in text: such an id names no event.
            keys = [self._db_key(k) for k in selection.keys if "\x00" not in k]
            one_of("key", keys or [""], "k")
        if selection.status:
            one_of("status", [s.value for s in selection.status], "s")
        if selection.event_type:
            one_of("event_type", selection.event_type, "e")
        if selection.since is not None:
            params["since"] = self._db_time(selection.since)
            clauses.append(f"received_at >= {p('since')}")
        if selection.until is not None:
            params["until"] = self._db_time(selection.until)
            clauses.append(f"received_at < {p('until')}")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _select(self, selection: Filter, body: bool = False) -> tuple[str, dict[str, Any]]:
        where, params = self._filter_sql(selection)
        order = "DESC" if selection.newest_first else "ASC"
        sql = (
            f"SELECT {_COLUMNS}{', body' if body else ''} FROM {self._table_sql} {where} "
            f"ORDER BY received_at {order}, key {order}"
        )
        if selection.limit is not None:
            sql += f" LIMIT {int(selection.limit)}"
        return sql, params

    def _prune_sql(
        self, older_than: timedelta | float | None, status: Sequence[Status | str]
    ) -> tuple[str, dict[str, Any]]:
        if older_than is None:
            seconds = self.keep_seconds
        else:
            seconds = (
                older_than.total_seconds()
                if isinstance(older_than, timedelta)
                else float(older_than)
            )
            if not seconds >= 0:
                raise ValueError("older_than must be zero or a positive duration")
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        selection = Filter(status=tuple(Status(s) for s in status), until=cutoff)
        where, params = self._filter_sql(selection)
        live = _LIVE.format(now=self._dialect.p("now_"))
        params["now_"] = self._db_time(datetime.now(timezone.utc))
        sql = f"DELETE FROM {self._table_sql} {where} AND NOT {live} RETURNING 1"
        return sql, params

    def _record(self, row: Sequence[Any], body: bool = False) -> EventRecord:
        (key, event_id, event_type, event_time, org, mode, version, received, status,
         attempts, error, handled, untyped, signature) = row[:14]  # fmt: skip
        return EventRecord(
            key=key,
            event_id=event_id,
            event_type=event_type,
            event_time=None if event_time is None else self._py_time(event_time),
            organization_id=org,
            mode=mode,
            api_version=version,
            received_at=self._py_time(received),
            status=Status(status),
            attempts=int(attempts),
            last_error=error,
            handled_at=None if handled is None else self._py_time(handled),
            untyped=bool(untyped),
            signature=signature,
            has_body=bool(row[14]),
            body=bytes(row[15]) if body and row[15] is not None else None,
        )

    def _recorded(
        self, delivery: OffloadedDelivery | Admitted, status: Status, error: str | None
    ) -> dict[str, Any]:
        from .._admission import Admitted
        from .._pipeline import idempotency_key

        if status not in (Status.RECEIVED, Status.FAILED, Status.DEAD):
            raise ValueError("record() stores received, failed or dead events")
        if isinstance(delivery, Admitted):
            values = self._payload(delivery)
            values["key"] = idempotency_key(delivery)
        else:
            values = self._from_offloaded(delivery)
        values["status"] = status.value
        values["error"] = None if error is None else redact(error)[:2000]
        return values

    def _from_offloaded(self, delivery: OffloadedDelivery) -> dict[str, Any]:
        import hashlib

        import msgspec

        values = _empty_payload()
        values.update(
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            body=bytes(delivery.body),
            signature=delivery.signature,
        )
        try:  # best effort: the envelope's facts, for listing; replay verifies for real
            envelope = msgspec.json.decode(delivery.body)
            if isinstance(envelope, dict):
                values["event_id"] = envelope.get("id") or delivery.event_id
                values["organization_id"] = envelope.get("organizationId")
                values["mode"] = envelope.get("mode")
                values["api_version"] = envelope.get("apiVersion")
                stamp = envelope.get("timestamp")
                if isinstance(stamp, str):
                    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=timezone.utc)
                    values["event_time"] = self._db_time(moment)
        except (msgspec.DecodeError, ValueError):
            pass
        values["key"] = values["event_id"] or hashlib.sha256(delivery.body).hexdigest()
        return values
