"""The statements of the SQL stores, written once for SQLite and PostgreSQL.

A row is ``(key, owner, expires_at)``: ``owner`` is the claim's token while a lease is
held and NULL once the key is done; ``expires_at`` ends the lease or the retention.
Each statement is one atomic step with the owner checked in its ``WHERE`` clause.

The templates name their values (``{key}``, ``{owner}``) and their times (``{now}``,
``{lease_end}``, ``{retention_end}``); a :class:`Dialect` fills in how its database
spells a parameter and a time, and :func:`result` reads the rows a step returned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ._base import Claim, Op, PurgeClock, SteppedStore, single_step

__all__ = [
    "DEFAULT_PURGE_INTERVAL",
    "DEFAULT_TABLE",
    "SCHEMA",
    "STATEMENTS",
    "Dialect",
    "SqlStore",
    "result",
]

DEFAULT_TABLE = "commet_webhook_keys"
#: How often (seconds) a process deletes expired rows while claiming.
DEFAULT_PURGE_INTERVAL = 300.0

# {t} is the quoted table name, {i} the quoted index name.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS {t} (key text PRIMARY KEY, owner text, "
    "expires_at {time_type} NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {i} ON {t} (expires_at)",
)

STATEMENTS: dict[Op, str] = {
    # Insert, or take over a row whose lease or retention has run out.
    Op.TAKE: "INSERT INTO {t} AS k (key, owner, expires_at) "
    "VALUES ({key}, {owner}, {lease_end}) "
    "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
    "expires_at = excluded.expires_at WHERE k.expires_at <= {now} RETURNING 1",
    Op.LOOK: "SELECT owner IS NULL FROM {t} WHERE key = {key} AND expires_at > {now}",
    Op.FINISH: "UPDATE {t} SET owner = NULL, expires_at = {retention_end} "
    "WHERE key = {key} AND owner = {owner} RETURNING 1",
    Op.FREE: "DELETE FROM {t} WHERE key = {key} AND owner = {owner} RETURNING 1",
    Op.EXTEND: "UPDATE {t} SET expires_at = {lease_end} "
    "WHERE key = {key} AND owner = {owner} AND expires_at > {now} RETURNING 1",
    Op.PURGE: "DELETE FROM {t} WHERE expires_at <= {now} RETURNING 1",
}


@dataclass(frozen=True)
class Dialect:
    """How one database spells the parts the templates leave open."""

    time_type: str  # the column type of expires_at
    now: str
    lease_end: str
    retention_end: str
    param: str  # a named parameter, with {} for its name

    def schema(self, table: str, index: str) -> list[str]:
        return [s.format(t=table, i=index, time_type=self.time_type) for s in SCHEMA]

    def statements(self, table: str) -> dict[Op, str]:
        """Every step's statement for ``table`` (already quoted)."""
        names = {name: self.param.format(name) for name in ("key", "owner")}
        return {
            op: template.format(
                t=table,
                now=self.now,
                lease_end=self.lease_end,
                retention_end=self.retention_end,
                **names,
            )
            for op, template in STATEMENTS.items()
        }


def result(op: Op, rows: list[Any]) -> Any:
    """What a step's rows mean (see :class:`~commet_webhooks.stores._base.Op`)."""
    if op is Op.LOOK:
        if not rows:
            return None
        return Claim.DONE if rows[0][0] else Claim.BUSY
    if op is Op.PURGE:
        return len(rows)
    return bool(rows)


class SqlStore(SteppedStore):
    """What the SQL stores share: the table name, purging, reading a step's rows."""

    def __init__(
        self,
        table: str,
        logger: logging.Logger,
        lease_seconds: float,
        retention_seconds: float,
        purge_interval: float,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retention_seconds=retention_seconds)
        self._purge_clock = PurgeClock(purge_interval)
        self.purge_interval = self._purge_clock.interval
        self.table = table
        self._logger = logger
        self._ready = False  # the table is known to exist

    def purge(self) -> int:
        """Delete every expired lease and every done key past its retention now.

        Claims do this on their own every ``purge_interval`` seconds; call it from a
        scheduled job if the receiver is idle for long stretches. Returns the count.
        """
        return int(self._run(lambda: single_step(Op.PURGE)))

    def _purge_due(self) -> bool:
        return self._purge_clock.due()

    def _found(self, op: Op, rows: list[Any]) -> Any:
        """The result of step ``op`` that returned ``rows``."""
        found = result(op, rows)
        if op is Op.PREPARE:
            self._ready = True
        elif op is Op.PURGE:
            self._purge_clock.reset()
            if found:
                self._logger.debug("purged %d expired idempotency keys", found)
        return found
