"""What the inbox keeps about one event, and how a set of events is selected."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

__all__ = ["DEFAULT_KEEP", "EventRecord", "Filter", "Status", "keep_seconds"]

#: How long the inbox keeps an event (counted from when it was received).
DEFAULT_KEEP = timedelta(days=30)


class Status(str, enum.Enum):
    """Where an event stands.

    ``received``: recorded, not (or no longer) being handled — a delivery that was
    interrupted, or one recorded without running. ``processing``: a worker holds its
    lease. ``done``: every handler succeeded. ``failed``: a handler raised, or the event
    did not fit its class (accepted untyped); Commet's retry or a replay runs it again.
    ``dead``: failed ``dead_after`` times, or recorded as a dead letter by a task queue
    worker that gave up. ``skipped``: the ordering guard found a newer event for the
    same resource already applied.
    """

    RECEIVED = "received"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    SKIPPED = "skipped"


#: Statuses a replay runs without ``force``.
REPLAYABLE = frozenset({Status.RECEIVED, Status.FAILED, Status.DEAD})
#: Statuses a Commet redelivery counts as handled (answered 200 duplicate).
FINISHED = frozenset({Status.DONE, Status.SKIPPED})


@dataclass(frozen=True)
class EventRecord:
    """One row of the inbox. ``body`` is ``None`` in listings (it is read by ``get``)."""

    key: str
    """The idempotency key: the event id, or the SHA-256 of an id-less body."""
    event_id: str | None
    event_type: str
    event_time: datetime | None
    """The envelope's ``timestamp``."""
    organization_id: str | None
    mode: str | None
    api_version: str | None
    received_at: datetime
    status: Status
    attempts: int
    last_error: str | None
    handled_at: datetime | None
    untyped: bool
    """Accepted untyped: the event did not fit its class in the version that received it."""
    signature: str | None = None
    has_body: bool = False
    """Whether the body was stored (a plain ``claim`` stores none: not replayable)."""
    body: bytes | None = field(default=None, repr=False)

    @property
    def replayable(self) -> bool:
        return self.has_body and self.status in REPLAYABLE


@dataclass(frozen=True)
class Filter:
    """A selection of events; every given field must match (all of them: everything).

    ``since``/``until`` bound ``received_at`` (``since`` inclusive, ``until``
    exclusive); naive datetimes are taken as UTC.
    """

    status: tuple[Status, ...] = ()
    event_type: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    keys: tuple[str, ...] = ()
    limit: int | None = None
    newest_first: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", tuple(Status(s) for s in _tuple(self.status)))
        object.__setattr__(self, "event_type", tuple(str(t) for t in _tuple(self.event_type)))
        object.__setattr__(self, "keys", tuple(str(k) for k in _tuple(self.keys)))
        object.__setattr__(self, "since", _utc(self.since))
        object.__setattr__(self, "until", _utc(self.until))
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise ValueError("limit must be a non-negative integer or None")


def _tuple(value: object) -> tuple[object, ...]:
    if isinstance(value, (str, Status)):
        return (value,)
    assert isinstance(value, Iterable)
    return tuple(value)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise TypeError("since/until must be datetimes")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def keep_seconds(keep: timedelta | float) -> float:
    """``keep`` (a timedelta or seconds) as positive seconds."""
    seconds = keep.total_seconds() if isinstance(keep, timedelta) else float(keep)
    if not seconds > 0:
        raise ValueError("keep must be a positive duration")
    return seconds
