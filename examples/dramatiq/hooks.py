"""Commet webhooks answered in milliseconds, handled on Dramatiq workers, exactly once.

``uvicorn hooks:asgi`` is the receiver; ``dramatiq hooks`` runs the handlers.
Run commands: README.md beside this file.
"""

from __future__ import annotations

import logging
import os
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from commet_webhooks import PaymentFailed, SubscriptionActivated, Webhooks
from commet_webhooks.asgi import WebhookApp
from commet_webhooks.offload.dramatiq import dramatiq_offload
from commet_webhooks.stores.redis import RedisStore

logging.basicConfig(
    level=logging.INFO,
    format="%(levelname)s %(commet_event_type)s %(commet_event_id)s %(name)s: %(message)s",
    force=True,  # the dramatiq command has set up logging already
)
emails = logging.getLogger("example.emails")

secret = os.environ.get("COMMET_WEBHOOK_SECRET")
if not secret:
    raise SystemExit("Set COMMET_WEBHOOK_SECRET to your endpoint's signing secret (whsec_...).")

# confirm_delivery=True: a delivery is acknowledged only once RabbitMQ confirmed it.
broker = RabbitmqBroker(
    url=os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
    confirm_delivery=True,
)
dramatiq.set_broker(broker)


def send_welcome_email(event: SubscriptionActivated) -> None:
    time.sleep(0.5)
    emails.info("welcome email -> %s", event.data.customer_id)


def start_dunning(event: PaymentFailed) -> None:
    time.sleep(0.5)
    emails.info("payment failed email -> %s", event.data.customer_id)


webhooks = Webhooks(
    secret,
    idempotency_store=RedisStore(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    offload=dramatiq_offload(
        broker, "hooks:webhooks", queue_name=os.environ.get("QUEUE", "commet_webhooks")
    ),
    on_subscription_activated=send_welcome_email,
    on_payment_failed=start_dunning,
)

asgi = WebhookApp(webhooks)
