"""Commet webhooks in aiohttp, each event handled exactly once.

A welcome email on activation, a goodbye on cancellation; each "email" is a log line
and a row in the table ``sent_emails``. The idempotency keys live in the same SQLite
file, which every worker opens, so a redelivered event sends nothing twice; a handler
that fails is answered 500, so Commet retries it.
Run command, a test drive and the conformance check: README.md beside this file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
from contextlib import closing

from aiohttp import web

from commet_webhooks import SQLiteStore, SubscriptionActivated, SubscriptionCanceled, Webhooks
from commet_webhooks.aiohttp import webhook_handler
from commet_webhooks.conformance import simulate_crash

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
emails = logging.getLogger("example.emails")

# One SQLite file for the idempotency keys and the emails sent, opened by every worker.
DB = os.environ.get("COMMET_WEBHOOKS_DB", "webhooks.db")


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(DB, timeout=10)
    db.execute("CREATE TABLE IF NOT EXISTS sent_emails (event_id TEXT, kind TEXT, customer TEXT)")
    return db


def record_email(kind: str, event_id: str | None, customer: str) -> None:
    with closing(_db()) as db, db:
        db.execute("INSERT INTO sent_emails VALUES (?, ?, ?)", (event_id, kind, customer))


def count_welcome_emails() -> int:
    """The effect probe for `commet-webhooks check`: welcome emails sent so far."""
    with closing(_db()) as db:
        query = "SELECT COUNT(*) FROM sent_emails WHERE kind = 'welcome'"
        return int(db.execute(query).fetchone()[0])


# Plain `def` handlers: SQLite blocks, so they run in the library's handler threads.
def send_welcome_email(event: SubscriptionActivated) -> None:
    simulate_crash(event)  # a no-op for real Commet events; see docs/testing.md
    record_email("welcome", event.id, event.data.customer_id)
    emails.info(
        "welcome email -> %s (invoice %s)", event.data.customer_id, event.data.invoice_number
    )


def send_cancellation_email(event: SubscriptionCanceled) -> None:
    record_email("cancellation", event.id, event.data.customer_id)
    emails.info("cancellation email -> %s (ends %s)", event.data.customer_id, event.data.end_date)


def make_app() -> web.Application:
    secret = os.environ.get("COMMET_WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("Set COMMET_WEBHOOK_SECRET to your endpoint's signing secret (whsec_...).")
    webhooks = Webhooks(
        webhook_secret=secret,
        on_subscription_activated=send_welcome_email,
        on_subscription_canceled=send_cancellation_email,
        idempotency_store=SQLiteStore(DB),  # each event handled once, across workers and restarts
        retry_on_handler_error=True,  # a handler that raises is answered 500: Commet retries
    )
    app = web.Application()
    app.router.add_route("*", "/webhooks/commet", webhook_handler(webhooks))
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port)
