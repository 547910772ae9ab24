"""Commet webhooks in aiohttp: a welcome email on activation, a goodbye on cancellation.

The "emails" are log lines. Run command and a test drive: README.md beside this file.
"""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from commet_webhooks import SubscriptionActivated, SubscriptionCanceled, Webhooks
from commet_webhooks.aiohttp import webhook_handler

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
emails = logging.getLogger("example.emails")


async def send_welcome_email(event: SubscriptionActivated) -> None:
    emails.info(
        "welcome email -> %s (invoice %s)", event.data.customer_id, event.data.invoice_number
    )


async def send_cancellation_email(event: SubscriptionCanceled) -> None:
    emails.info("cancellation email -> %s (ends %s)", event.data.customer_id, event.data.end_date)


def make_app() -> web.Application:
    secret = os.environ.get("COMMET_WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("Set COMMET_WEBHOOK_SECRET to your endpoint's signing secret (whsec_...).")
    webhooks = Webhooks(
        webhook_secret=secret,
        on_subscription_activated=send_welcome_email,
        on_subscription_canceled=send_cancellation_email,
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
