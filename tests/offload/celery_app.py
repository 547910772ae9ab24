"""The Celery app of the tests: one module is receiver (uvicorn) and worker (celery -A).

Its handlers and configuration are in :mod:`offload_effects`.
"""

from __future__ import annotations

from celery import Celery
from offload_effects import BROKER, DEAD_QUEUE, LOG_FORMAT, MAX_RETRIES, QUEUE, make_webhooks

from commet_webhooks.asgi import WebhookApp
from commet_webhooks.celery import celery_offload

app = Celery("offload_tests", broker=BROKER)
app.conf.update(
    worker_log_format=LOG_FORMAT,
    worker_task_log_format=LOG_FORMAT,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_default_queue=QUEUE,
)

offload = celery_offload(
    app,
    lambda: webhooks,
    queue=QUEUE,
    max_retries=MAX_RETRIES,
    retry_backoff=0.25,
    retry_backoff_max=2.0,
    publish_timeout=3.0,
    dead_letter_queue=DEAD_QUEUE,
)
webhooks = make_webhooks(offload)
asgi = WebhookApp(webhooks)
