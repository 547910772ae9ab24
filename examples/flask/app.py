"""Commet webhooks in Flask: a welcome email on activation, a goodbye on cancellation.

The "emails" are log lines. Run command and a test drive: README.md beside this file.
"""

from __future__ import annotations

import logging
import os

from flask import Flask

from commet_webhooks import SubscriptionActivated, SubscriptionCanceled, Webhooks
from commet_webhooks.flask import webhook_blueprint

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
emails = logging.getLogger("example.emails")


def send_welcome_email(event: SubscriptionActivated) -> None:
    emails.info(
        "welcome email -> %s (invoice %s)", event.data.customer_id, event.data.invoice_number
    )


def send_cancellation_email(event: SubscriptionCanceled) -> None:
    emails.info("cancellation email -> %s (ends %s)", event.data.customer_id, event.data.end_date)


secret = os.environ.get("COMMET_WEBHOOK_SECRET")
if not secret:
    raise SystemExit("Set COMMET_WEBHOOK_SECRET to your endpoint's signing secret (whsec_...).")

webhooks = Webhooks(
    webhook_secret=secret,
    on_subscription_activated=send_welcome_email,
    on_subscription_canceled=send_cancellation_email,
)

app = Flask(__name__)
app.register_blueprint(webhook_blueprint(webhooks))  # POST /webhooks/commet
