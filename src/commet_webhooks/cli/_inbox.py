"""``commet-webhooks inbox list|show|replay|prune``: the inbox from the command line."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.json import JSON
from rich.markup import escape
from rich.table import Table

from ..errors import StoreUnavailableError
from ._common import EXIT_FAILED, console, fail

if TYPE_CHECKING:
    from ..dispatch import Webhooks
    from ..inbox import EventRecord, Filter, InboxStore, ReplayReport

__all__ = ["inbox_app"]

#: Environment variable read as the default ``--store``.
STORE_ENV = "COMMET_INBOX_URL"

inbox_app = typer.Typer(
    name="inbox",
    help=(
        "The inbox: list, show, replay and prune the events an inbox store recorded "
        "(SQLiteInbox / PostgresInbox). --store takes postgresql://..., sqlite:///path "
        "or a file path."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StoreOption = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads the annotation at run time
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        show_envvar=True,
        show_default=False,
        metavar="URL",
        help="The inbox: postgresql://..., sqlite:///path/inbox.db or a file path.",
    ),
]
TableOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--table", metavar="NAME", show_default=False, help="Inbox table name."),
]
SchemaOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--schema", metavar="NAME", show_default=False, help="PostgreSQL schema."),
]
StatusOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--status",
        metavar="STATUS",
        show_default=False,
        help="received, processing, done, failed, dead or skipped (repeatable).",
    ),
]
TypeOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--type", metavar="EVENT", show_default=False, help="Event type (repeatable)."),
]
SinceOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--since",
        metavar="WHEN",
        show_default=False,
        help="Received at or after: ISO 8601 time, or an age such as 90m, 6h, 2d.",
    ),
]
UntilOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--until", metavar="WHEN", show_default=False, help="Received before (as --since)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]

_STATUS_STYLE = {
    "done": "green",
    "skipped": "cyan",
    "failed": "red",
    "dead": "bold red",
    "processing": "yellow",
    "received": "blue",
}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ---------------------------------------------------------------- parsing


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    age = _AGE.match(text)
    if age:
        seconds = float(age.group(1)) * _UNITS[age.group(2)]
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} must be an ISO 8601 time or an age such as 90m, 6h, 2d: {text!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _duration(text: str, option: str) -> float:
    age = _AGE.match(text)
    if not age:
        fail(f"{option} must be an age such as 90m, 6h, 30d: {text!r}")
    return float(age.group(1)) * _UNITS[age.group(2)]


def _statuses(values: list[str] | None) -> tuple[Any, ...]:
    from ..inbox import Status

    known = [s.value for s in Status]
    for value in values or []:
        if value not in known:
            fail(f"unknown status {value!r}: use one of {', '.join(known)}")
    return tuple(Status(v) for v in values or [])


def _filter(
    status: list[str] | None,
    event_type: list[str] | None,
    since: str | None,
    until: str | None,
    *,
    keys: list[str] | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    default_status: tuple[Any, ...] = (),
) -> Filter:
    from ..inbox import Filter

    return Filter(
        status=_statuses(status) or default_status,
        event_type=tuple(event_type or ()),
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        keys=tuple(keys or ()),
        limit=limit,
        newest_first=newest_first,
    )


def _open(url: str | None, table: str | None, schema: str | None) -> InboxStore:
    from ..inbox import open_inbox

    if not url:
        fail(f"an inbox is required: pass --store URL or set {STORE_ENV}")
    try:
        return open_inbox(url, table=table, schema=schema)
    except ImportError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))


def _load_app(target: str) -> Webhooks:
    """The ``Webhooks`` at ``module:attr`` or ``path/file.py:attr`` (or a factory for one)."""
    from ..dispatch import Webhooks

    module_name, _, attr = target.rpartition(":")
    if not module_name or not attr:
        fail(f"--app must be module:attribute or path/to/file.py:attribute, got {target!r}")
    by_path = module_name.endswith(".py") or os.sep in module_name
    path = Path(module_name).resolve()
    if by_path and not path.is_file():
        fail(f"--app: no such file {module_name}")
    try:
        if by_path:
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            sys.path.insert(0, str(path.parent))
            spec.loader.exec_module(module)
        else:
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module failed to import
        fail(f"--app: could not import {module_name}: {type(exc).__name__}: {exc}")
    found = getattr(module, attr, None)
    if found is None:
        fail(f"--app: {module_name} has no attribute {attr!r}")
    if not isinstance(found, Webhooks) and callable(found):
        found = found()
    if not isinstance(found, Webhooks):
        fail(f"--app: {target} is not a commet_webhooks.Webhooks (nor a function returning one)")
    return found


# ---------------------------------------------------------------- rendering


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _status(value: str) -> str:
    return f"[{_STATUS_STYLE.get(value, 'white')}]{value}[/]"


def _as_json(record: EventRecord) -> dict[str, Any]:
    return {
        "id": record.key,
        "type": record.event_type,
        "status": record.status.value,
        "attempts": record.attempts,
        "event_time": record.event_time.isoformat() if record.event_time else None,
        "received_at": record.received_at.isoformat(),
        "handled_at": record.handled_at.isoformat() if record.handled_at else None,
        "organization_id": record.organization_id,
        "mode": record.mode,
        "api_version": record.api_version,
        "untyped": record.untyped,
        "last_error": record.last_error,
    }


def _events_table(records: list[EventRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("id", "type", "status", "attempts", "received (UTC)", "handled", "last error"):
        table.add_column(column, no_wrap=column not in ("last error",))
    for r in records:
        table.add_row(
            escape(r.key),
            escape(r.event_type) + (" [dim](untyped)[/]" if r.untyped else ""),
            _status(r.status.value),
            str(r.attempts),
            _time(r.received_at),
            _time(r.handled_at),
            escape((r.last_error or "")[:120]),
        )
    return table


def _summary(counts: dict[Any, int]) -> str:
    if not counts:
        return "no events"
    return ", ".join(f"{_status(s.value)} {n}" for s, n in sorted(counts.items(), key=str))


def _store_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except StoreUnavailableError as exc:
        fail(str(exc), EXIT_FAILED)


# ---------------------------------------------------------------- commands


@inbox_app.command("list")
def list_events(
    store: StoreOption = None,
    status: StatusOption = None,
    event_type: TypeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, metavar="N", help="At most N events (newest).")
    ] = 50,
    as_json: JsonOption = False,
    table: TableOption = None,
    schema: SchemaOption = None,
) -> None:
    """List recorded events, newest first, with their status and attempts."""
    inbox = _open(store, table, schema)
    try:
        selection = _filter(status, event_type, since, until, limit=limit, newest_first=True)
        records = _store_call(inbox.list, selection)
        if as_json:
            for record in records:
                print(json.dumps(_as_json(record)))
            return
        counts = _store_call(inbox.counts, selection)
        total = sum(counts.values())
        console.print(_events_table(records, f"Inbox: {len(records)} of {total} event(s)"))
        console.print(_summary(counts))
    finally:
        inbox.close()


@inbox_app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(metavar="ID", help="The event id (its key).")],
    store: StoreOption = None,
    as_json: JsonOption = False,
    table: TableOption = None,
    schema: SchemaOption = None,
) -> None:
    """Show one event: its record and the body as received."""
    inbox = _open(store, table, schema)
    try:
        record = _store_call(inbox.get, event_id)
    finally:
        inbox.close()
    if record is None:
        fail(f"no event {event_id!r} in this inbox", EXIT_FAILED)
    if as_json:
        out = _as_json(record)
        out["body"] = record.body.decode("utf-8", "replace") if record.body else None
        print(json.dumps(out))
        return
    details = Table(show_header=False, title=f"Event {escape(record.key)}", title_justify="left")
    details.add_column(style="bold")
    details.add_column()
    for name, value in _as_json(record).items():
        shown = (
            _status(str(value)) if name == "status" else escape("" if value is None else str(value))
        )
        details.add_row(name, shown)
    console.print(details)
    if record.body:
        try:
            console.print(JSON(record.body.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            console.print(escape(record.body.decode("utf-8", "replace")))


@inbox_app.command("replay")
def replay_events(
    event_ids: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(metavar="ID", show_default=False, help="Event ids to replay."),
    ] = None,
    app: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--app",
            metavar="MODULE:ATTR",
            show_default=False,
            help="Your Webhooks object (module:attr or path/file.py:attr): its secrets "
            "verify the bodies again and its handlers run.",
        ),
    ] = None,
    store: StoreOption = None,
    status: StatusOption = None,
    event_type: TypeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Run events already done or skipped again.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan (which events, how many); run nothing.")
    ] = False,
    table: TableOption = None,
    schema: SchemaOption = None,
) -> None:
    """Run recorded events through your handlers again (default: failed, dead, received).

    Each event is verified again, claimed (one more attempt on its record) and
    completed like a live delivery, so a replay is idempotent per event: one already
    done is skipped unless --force. Exit 1 when an event that ran did not end done.
    """
    from ..inbox import InboxStore, plan, replay
    from ..inbox._model import REPLAYABLE

    default = () if (force or event_ids) else tuple(sorted(REPLAYABLE, key=str))
    selection: Any = (
        list(event_ids)
        if event_ids
        else _filter(status, event_type, since, until, default_status=default)
    )
    if event_ids and (status or event_type or since or until):
        fail("give event ids or filters (--status, --type, --since, --until), not both")
    inbox = _open(store, table, schema) if store else None
    webhooks = _load_app(app) if app else None
    if webhooks is None and not dry_run:
        fail("replay runs your handlers: pass --app module:webhooks (or --dry-run for the plan)")
    try:
        if webhooks is not None:
            if not isinstance(webhooks.idempotency_store, InboxStore):
                fail("--app: its Webhooks must record into an inbox (SQLiteInbox, PostgresInbox)")
            if inbox is None:
                inbox = webhooks.idempotency_store
        if inbox is None:
            fail(f"an inbox is required: pass --store URL or set {STORE_ENV}")
        report: ReplayReport
        if dry_run:
            report = _store_call(plan, inbox, selection, force=force)
        else:
            assert webhooks is not None
            try:
                report = _store_call(replay, webhooks, selection, force=force, inbox=inbox)
            except ValueError as exc:
                fail(str(exc))
    finally:
        if inbox is not None:
            inbox.close()
    _print_report(report)
    missing = any(r.action == "missing" for r in report.results)
    if missing or (not report.dry_run and not report.ok):
        raise typer.Exit(EXIT_FAILED)


def _print_report(report: ReplayReport) -> None:
    title = "Replay plan (dry run)" if report.dry_run else "Replay"
    table = Table(title=title, title_justify="left")
    columns = ["id", "type", "status", "action"]
    if not report.dry_run:
        columns += ["outcome", "now", "attempts"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for r in report.results:
        row = [
            escape(r.key),
            escape(r.event_type),
            _status(r.before.value) if r.before else "",
            escape(r.action),
        ]
        if not report.dry_run:
            row += [
                r.outcome.value if r.outcome else "",
                _status(r.after.value) if r.after else "",
                str(r.attempts) if r.ran else "",
            ]
        table.add_row(*row)
    console.print(table)
    runs = len(report.planned)
    skipped = len(report.results) - runs
    if report.dry_run:
        console.print(f"{runs} event(s) would run, {skipped} would be skipped; nothing was run.")
        return
    done = sum(
        1 for r in report.planned if r.after is not None and r.after.value in ("done", "skipped")
    )
    console.print(f"{runs} event(s) ran: {done} done, {runs - done} not done; {skipped} skipped.")


@inbox_app.command("prune")
def prune(
    store: StoreOption = None,
    older_than: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--older-than",
            metavar="AGE",
            show_default=False,
            help="Received more than AGE ago (90m, 6h, 30d); default: the inbox's keep (30d).",
        ),
    ] = None,
    status: StatusOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    table: TableOption = None,
    schema: SchemaOption = None,
) -> None:
    """Delete old events (never one being handled right now)."""
    inbox = _open(store, table, schema)
    age = None if older_than is None else _duration(older_than, "--older-than")
    statuses = _statuses(status)
    try:
        if dry_run:
            counts = _store_call(inbox.prune_plan, older_than=age, status=statuses)
            total = sum(counts.values())
            console.print(
                f"would delete {total} event(s): {_summary(counts)}; nothing was deleted."
            )
            return
        deleted = _store_call(inbox.prune, older_than=age, status=statuses)
        console.print(f"deleted {deleted} event(s)")
    finally:
        inbox.close()
