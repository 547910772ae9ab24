"""Replay: run stored events through the normal pipeline again, after a fix.

A replay hands the stored body and signature to ``Webhooks.handle_offloaded`` — the
task-queue worker's entry point — so the body is verified again against the
configured secrets, claimed through the inbox (one more attempt on its row), run by
today's handlers and completed or released exactly like a live delivery. That makes a
replay idempotent per event: an event already ``done`` (or ``skipped``) is left alone,
and two replays of one event at once run it once (the second finds it busy or done).
``force=True`` first reopens finished events so they run again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._offload import OffloadedDelivery
from .._responses import Outcome, WebhookResponse
from .._wire import iso_time
from ._model import FINISHED, EventRecord, Filter, Status
from ._store import InboxStore

if TYPE_CHECKING:
    from ..dispatch import Webhooks

__all__ = ["ReplayReport", "ReplayResult", "areplay", "plan", "replay"]

#: Plan actions.
RUN = "run"
SKIP_DONE = "skip: already handled"
SKIP_BUSY = "skip: being handled"
SKIP_NO_BODY = "skip: no body stored"
MISSING = "missing"


@dataclass(frozen=True)
class ReplayResult:
    """One event of a replay: what was planned, and (unless a dry run) what happened."""

    key: str
    event_type: str
    action: str
    """``run``, or why it was not run (``skip: ...``, ``missing``)."""
    before: Status | None
    after: Status | None = None
    outcome: Outcome | None = None
    """The pipeline's outcome for a run: ``ok``, ``handler_error``, ``duplicate``, ..."""
    attempts: int = 0

    @property
    def ran(self) -> bool:
        return self.outcome is not None


@dataclass
class ReplayReport:
    results: list[ReplayResult] = field(default_factory=list)
    dry_run: bool = False

    @property
    def planned(self) -> list[ReplayResult]:
        return [r for r in self.results if r.action == RUN]

    def count(self, status: Status | str) -> int:
        """How many events ended (or, in a dry run, are) in ``status``."""
        wanted = Status(status)
        return sum(1 for r in self.results if (r.after or r.before) == wanted)

    @property
    def ok(self) -> bool:
        """Every event that ran ended done (or skipped by the ordering guard)."""
        return all(r.after in FINISHED for r in self.results if r.action == RUN)


def _inbox_of(webhooks: Webhooks, inbox: InboxStore | None) -> InboxStore:
    store = webhooks.idempotency_store
    if not isinstance(store, InboxStore):
        raise TypeError(
            "replay needs Webhooks(idempotency_store=<an inbox>): its claims are what "
            "record the new attempt"
        )
    if inbox is not None and inbox is not store and inbox.location != store.location:
        raise ValueError(
            f"the inbox to replay ({inbox.location}) is not the one these webhooks "
            f"record into ({store.location})"
        )
    return inbox or store


def _select(inbox: InboxStore, target: str | Filter | Iterable[str]) -> tuple[list[str], list[Any]]:
    """Keys to replay, and the records already read for a filter."""
    if isinstance(target, Filter):
        return [], inbox.list(target)
    keys = [target] if isinstance(target, str) else [str(k) for k in target]
    return keys, []


def _action(record: EventRecord | None, force: bool) -> str:
    if record is None:
        return MISSING
    if record.status is Status.PROCESSING:
        return SKIP_BUSY
    if record.status in FINISHED and not force:
        return SKIP_DONE
    return RUN


def plan(
    inbox: InboxStore, target: str | Filter | Iterable[str], *, force: bool = False
) -> ReplayReport:
    """What :func:`replay` would do, without running anything (a dry run)."""
    keys, records = _select(inbox, target)
    report = ReplayReport(dry_run=True)
    for key in keys:
        records.append(inbox.get(key) or key)
    for record in records:
        if isinstance(record, str):
            report.results.append(ReplayResult(record, "", MISSING, None))
            continue
        action = _action(record, force)
        if action == RUN and not record.has_body:
            action = SKIP_NO_BODY
        report.results.append(
            ReplayResult(
                record.key, record.event_type, action, record.status, attempts=record.attempts
            )
        )
    return report


def _delivery(record: EventRecord) -> OffloadedDelivery:
    assert record.body is not None and record.signature is not None
    return OffloadedDelivery(
        body=record.body,
        signature=record.signature,
        event_id=record.event_id,
        event_type=record.event_type,
        received_at=iso_time(record.received_at),
    )


def _finish(
    record: EventRecord, response: WebhookResponse, after: EventRecord | None
) -> ReplayResult:
    return ReplayResult(
        record.key,
        record.event_type,
        RUN,
        record.status,
        after.status if after is not None else None,
        response.outcome,
        after.attempts if after is not None else record.attempts,
    )


def replay(
    webhooks: Webhooks,
    target: str | Filter | Iterable[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    inbox: InboxStore | None = None,
) -> ReplayReport:
    """Run stored events through ``webhooks`` again; ``target`` is an event id (key),
    several, or a :class:`Filter`.

    Events already handled are left alone unless ``force``; each run is one more
    attempt on the event's row. ``dry_run`` returns the plan and runs nothing.
    Raises ``StoreUnavailableError`` when the inbox cannot be read.
    """
    inbox = _inbox_of(webhooks, inbox)
    planned = plan(inbox, target, force=force)
    if dry_run:
        return planned
    report = ReplayReport()
    for item in planned.results:
        record = inbox.get(item.key) if item.action == RUN else None
        if record is None or record.body is None or record.signature is None:
            action = (
                item.action if item.action != RUN else (MISSING if record is None else SKIP_NO_BODY)
            )
            report.results.append(ReplayResult(item.key, item.event_type, action, item.before))
            continue
        if force and record.status in FINISHED:
            inbox.reopen(record.key)
        # Stored events are old by design: the signature is checked, the age is not.
        response = webhooks.handle_offloaded(_delivery(record), check_tolerance=False)
        report.results.append(_finish(record, response, inbox.get(record.key)))
    return report


async def areplay(
    webhooks: Webhooks,
    target: str | Filter | Iterable[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    inbox: InboxStore | None = None,
) -> ReplayReport:
    """:func:`replay` for async code (handlers run as ``Webhooks.handle`` runs them)."""
    from ..stores._base import in_store_thread

    inbox = _inbox_of(webhooks, inbox)
    planned = await in_store_thread(lambda: plan(inbox, target, force=force))
    if dry_run:
        return planned
    report = ReplayReport()
    for item in planned.results:
        record = await inbox.aget(item.key) if item.action == RUN else None
        if record is None or record.body is None or record.signature is None:
            action = (
                item.action if item.action != RUN else (MISSING if record is None else SKIP_NO_BODY)
            )
            report.results.append(ReplayResult(item.key, item.event_type, action, item.before))
            continue
        if force and record.status in FINISHED:
            await inbox.areopen(record.key)
        response = await webhooks.ahandle_offloaded(_delivery(record), check_tolerance=False)
        report.results.append(_finish(record, response, await inbox.aget(record.key)))
    return report
