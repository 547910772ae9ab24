"""Commet webhooks in Django, with the settings-driven plugin and its signals, exactly once.

A whole Django project in one file: settings, URLs and signal receivers. A welcome
email on activation, a goodbye on cancellation; each "email" is a log line and a row in
the table ``sent_emails``. The idempotency keys live in the same SQLite file, which
every worker opens, so a redelivered event sends nothing twice; a receiver that fails
is answered 500, so Commet retries it.
Run command, a test drive and the conformance check: README.md beside this file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from contextlib import closing
from typing import Any

import django
from django.conf import settings
from django.dispatch import receiver
from django.urls import include, path

from commet_webhooks import SQLiteStore, SubscriptionActivated, SubscriptionCanceled
from commet_webhooks.conformance import simulate_crash

# One SQLite file for the idempotency keys and the emails sent, opened by every worker.
DB = os.environ.get("COMMET_WEBHOOKS_DB", "webhooks.db")

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["commet_webhooks.django"],  # adds a system check for the settings
    MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
    COMMET_WEBHOOK_SECRET=os.environ.get("COMMET_WEBHOOK_SECRET"),
    COMMET_WEBHOOK_OPTIONS={
        "idempotency_store": SQLiteStore(DB),  # each event handled once, across workers
        "retry_on_handler_error": True,  # a receiver that raises is answered 500: Commet retries
    },
    LOGGING={
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"example": {"handlers": ["console"], "level": "INFO"}},
    },
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from commet_webhooks.django.asgi import limit_body  # noqa: E402
from commet_webhooks.django.signals import (  # noqa: E402
    subscription_activated,
    subscription_canceled,
)

emails = logging.getLogger("example.emails")

urlpatterns = [path("webhooks/commet/", include("commet_webhooks.django.urls"))]


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


@receiver(subscription_activated)
def send_welcome_email(sender: type, event: SubscriptionActivated, **kwargs: Any) -> None:
    simulate_crash(event)  # a no-op for real Commet events; see docs/testing.md
    record_email("welcome", event.id, event.data.customer_id)
    emails.info(
        "welcome email -> %s (invoice %s)", event.data.customer_id, event.data.invoice_number
    )


@receiver(subscription_canceled)
def send_cancellation_email(sender: type, event: SubscriptionCanceled, **kwargs: Any) -> None:
    record_email("cancellation", event.id, event.data.customer_id)
    emails.info("cancellation email -> %s (ends %s)", event.data.customer_id, event.data.end_date)


# Served by an ASGI server (see README.md): the body limit holds before Django reads.
application = limit_body(get_asgi_application(), "/webhooks/commet/")
# Served by a WSGI server: the views stop reading at the limit themselves.
wsgi_application = get_wsgi_application()


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
