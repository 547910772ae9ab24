"""A receiver with one defect: its deduplication lives in one process (``MemoryStore``).

With one worker it is exactly-once. Run two (gunicorn -w 2, two containers, two
machines) and a retry that reaches the other worker runs the handler again. Everything
else is right (retries on handler errors, the crash hook), so `commet-webhooks check`
fails exactly one rule, concurrent-duplicates-run-once.

Run command and the check: README.md beside this file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from flask import Flask

from commet_webhooks import MemoryStore, SubscriptionActivated, Webhooks
from commet_webhooks.conformance import simulate_crash
from commet_webhooks.flask import webhook_blueprint

DATA = Path(os.environ.get("EXAMPLE_DATA_DIR") or Path(tempfile.gettempdir(), "commet-examples"))
DATA.mkdir(parents=True, exist_ok=True)
EMAILS = DATA / "memory-store-emails.sqlite3"  # the emails, shared like a real database


def _emails() -> sqlite3.Connection:
    db = sqlite3.connect(EMAILS, timeout=10)
    db.execute("CREATE TABLE IF NOT EXISTS emails (event_id TEXT, customer TEXT)")
    return db


def send_welcome_email(event: SubscriptionActivated) -> None:
    simulate_crash(event)  # a no-op for real Commet events; see docs/testing.md
    with closing(_emails()) as db, db:
        db.execute("INSERT INTO emails VALUES (?, ?)", (event.id, event.data.customer_id))


def count_welcome_emails() -> int:
    """The effect probe: how many welcome emails were sent so far."""
    with closing(_emails()) as db:
        return int(db.execute("SELECT COUNT(*) FROM emails").fetchone()[0])


webhooks = Webhooks(
    webhook_secret=os.environ.get("COMMET_WEBHOOK_SECRET") or "whsec_dev",
    on_subscription_activated=send_welcome_email,
    idempotency_store=MemoryStore(),  # THE DEFECT: each worker remembers only its own events
    retry_on_handler_error=True,
)

app = Flask(__name__)
app.register_blueprint(webhook_blueprint(webhooks))
