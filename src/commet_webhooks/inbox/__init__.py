"""The inbox: a durable record of every verified event, replay, and an ordering guard.

``SQLiteInbox`` (embedded) and ``PostgresInbox`` (``commet_webhooks.inbox.postgres``,
needs the ``postgres`` extra) are idempotency stores that keep what they claim::

    from commet_webhooks import Webhooks
    from commet_webhooks.inbox import SQLiteInbox, replay

    inbox = SQLiteInbox("inbox.db")
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=dunning)
    ...
    replay(webhooks, Filter(status="failed"))  # after deploying the fix

See ``docs/inbox.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._model import DEFAULT_KEEP, EventRecord, Filter, Status
from ._ordering import OrderingGuard, is_stale, resource_of
from ._replay import ReplayReport, ReplayResult, areplay, plan, replay
from ._store import DEFAULT_INBOX_TABLE, InboxStore

if TYPE_CHECKING:
    from .postgres import PostgresInbox
    from .sqlite import SQLiteInbox

__all__ = [
    "DEFAULT_INBOX_TABLE",
    "DEFAULT_KEEP",
    "EventRecord",
    "Filter",
    "InboxStore",
    "OrderingGuard",
    "PostgresInbox",
    "ReplayReport",
    "ReplayResult",
    "SQLiteInbox",
    "Status",
    "areplay",
    "is_stale",
    "open_inbox",
    "plan",
    "replay",
    "resource_of",
]


def __getattr__(name: str) -> Any:
    if name == "SQLiteInbox":
        from .sqlite import SQLiteInbox

        return SQLiteInbox
    if name == "PostgresInbox":
        from .postgres import PostgresInbox

        return PostgresInbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_inbox(url: str, *, table: str | None = None, schema: str | None = None) -> InboxStore:
    """The inbox at ``url``: ``postgresql://...``, ``sqlite:///abs/path.db``,
    ``sqlite:relative.db``, or a plain file path (SQLite)."""
    options: dict[str, Any] = {} if table is None else {"table": table}
    if url.startswith(("postgresql://", "postgres://")) or (
        "=" in url and "dbname" in url and "/" not in url
    ):
        from .postgres import PostgresInbox

        return PostgresInbox(url, schema=schema, **options)
    if schema is not None:
        raise ValueError("schema applies to PostgreSQL inboxes only")
    path = url
    if url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
        if path.startswith("///"):
            path = path[2:]
        elif path.startswith("//"):
            raise ValueError("sqlite URLs are sqlite:///absolute/path or sqlite:relative/path")
    if not path or "://" in path:
        raise ValueError("not an inbox URL: use postgresql://..., sqlite:///path or a file path")
    from .sqlite import SQLiteInbox

    return SQLiteInbox(path, **options)
