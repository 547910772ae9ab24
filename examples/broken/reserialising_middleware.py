"""A receiver with one defect: a middleware re-encodes the JSON body before verification.

Everything else is right (a shared SQLite idempotency store, retries on handler errors,
the crash hook), so `commet-webhooks check` fails exactly one rule, raw-body-verified.
The middleware looks harmless: it re-encodes compactly, and Commet's own bodies are
compact, so ordinary deliveries still verify. Any body whose bytes differ from what
``json.dumps`` would write (spacing, key order, escapes) is rejected as forged.

Run command and the check: README.md beside this file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from contextlib import closing, suppress
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commet_webhooks import SQLiteStore, SubscriptionActivated, Webhooks
from commet_webhooks.conformance import simulate_crash
from commet_webhooks.starlette import webhook_route

DATA = Path(os.environ.get("EXAMPLE_DATA_DIR") or Path(tempfile.gettempdir(), "commet-examples"))
DATA.mkdir(parents=True, exist_ok=True)
EMAILS = DATA / "reserialising-emails.sqlite3"


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


class NormaliseJson:
    """THE DEFECT: parses every JSON request body and re-encodes it compactly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        with suppress(ValueError):  # not JSON: left as it is
            body = json.dumps(json.loads(body), separators=(",", ":")).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


webhooks = Webhooks(
    webhook_secret=os.environ.get("COMMET_WEBHOOK_SECRET") or "whsec_dev",
    on_subscription_activated=send_welcome_email,
    idempotency_store=SQLiteStore(DATA / "reserialising-store.sqlite3"),
    retry_on_handler_error=True,
)

app = Starlette(routes=[webhook_route(webhooks)], middleware=[Middleware(NormaliseJson)])
