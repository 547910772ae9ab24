"""Commet webhooks answered in milliseconds, handled on Celery workers, exactly once.

One module is both sides: ``uvicorn hooks:asgi`` is the receiver (it verifies each
delivery, hands it to RabbitMQ and answers 200 once RabbitMQ confirmed it), and
``celery -A hooks worker`` runs the handlers (verified again, deduplicated in Redis).
Run commands and a test drive: README.md beside this file.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery

from commet_webhooks import PaymentFailed, SubscriptionActivated, Webhooks
from commet_webhooks.asgi import WebhookApp
from commet_webhooks.celery import celery_offload
from commet_webhooks.stores.redis import RedisStore

logging.basicConfig(
    level=logging.INFO,
    format="%(levelname)s %(commet_event_type)s %(commet_event_id)s %(name)s: %(message)s",
)
emails = logging.getLogger("example.emails")

secret = os.environ.get("COMMET_WEBHOOK_SECRET")
if not secret:
    raise SystemExit("Set COMMET_WEBHOOK_SECRET to your endpoint's signing secret (whsec_...).")

app = Celery("hooks", broker=os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    worker_prefetch_multiplier=1,  # with acks_late: hold one message at a time per process
    worker_hijack_root_logger=False,  # keep the format above, event id and type included
    broker_connection_retry_on_startup=True,
    task_default_queue=os.environ.get("QUEUE", "commet_webhooks"),
)


def send_welcome_email(event: SubscriptionActivated) -> None:
    time.sleep(0.5)  # a slow email provider: fine on a worker, never in the request
    emails.info("welcome email -> %s", event.data.customer_id)


def start_dunning(event: PaymentFailed) -> None:
    time.sleep(0.5)
    emails.info("payment failed email -> %s", event.data.customer_id)


# Named lazily: the worker resolves "hooks:webhooks" on its first task. Keep the
# offload: offload.replay_dead_letters() sends given-up deliveries through again.
offload = celery_offload(app, "hooks:webhooks", queue=app.conf.task_default_queue)

webhooks = Webhooks(
    secret,
    # The worker's store: a redelivered message or a duplicate delivery runs nothing twice.
    idempotency_store=RedisStore(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
    offload=offload,
    on_subscription_activated=send_welcome_email,
    on_payment_failed=start_dunning,
)

asgi = WebhookApp(webhooks)
