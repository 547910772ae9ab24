"""The Dramatiq app of the tests: receiver (uvicorn) and worker (``dramatiq dramatiq_app``).

Its handlers and configuration are in :mod:`offload_effects`.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from offload_effects import BROKER, LOG_FORMAT, MAX_RETRIES, QUEUE, make_webhooks

from commet_webhooks.asgi import WebhookApp
from commet_webhooks.offload.dramatiq import dramatiq_offload

# pika reads the default vhost only as "/%2F" (kombu also accepts "//").
PIKA_URL = BROKER[:-2] + "/%2F" if BROKER.endswith("//") else BROKER
broker = RabbitmqBroker(url=PIKA_URL, confirm_delivery=True)
dramatiq.set_broker(broker)
offload = dramatiq_offload(
    broker,
    "dramatiq_app:webhooks",
    queue_name=QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=0.25,
    max_backoff=2.0,
)
webhooks = make_webhooks(offload)
asgi = WebhookApp(webhooks)

for handler in logging.getLogger().handlers:
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
