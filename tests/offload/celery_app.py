"""The app the Celery tests run: one module is receiver (uvicorn) and worker (celery -A).

Configured by environment (the test sets it for its subprocesses):

- ``OFFLOAD_BROKER``: AMQP URL (the test's TCP proxy in front of RabbitMQ);
- ``OFFLOAD_QUEUE``, ``OFFLOAD_DEAD_QUEUE``: this run's own queues;
- ``OFFLOAD_SCHEMA``: the PostgreSQL schema where handlers record their effects;
- ``OFFLOAD_REDIS_PREFIX``: this run's idempotency keys in Redis;
- ``OFFLOAD_SLOW_EVENT``: an event id whose handler takes 3 s (the one to kill);
- ``OFFLOAD_HANDLER_SECONDS``: how long every other handler takes.

Each handler writes, in one transaction, the event's effect row; the row that says a
handler started is written before (autocommit), so the test can kill it mid-handler.
Events listed in ``<schema>.broken`` fail their handler (for the dead-letter test).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from celery import Celery

from commet_webhooks import Observer, WebhookEvent, Webhooks
from commet_webhooks.asgi import WebhookApp
from commet_webhooks.celery import celery_offload
from commet_webhooks.stores.redis import RedisStore

SECRET = os.environ.get("OFFLOAD_SECRET", "whsec_offload_tests")
SCHEMA = os.environ.get("OFFLOAD_SCHEMA", "offload_tests")
POSTGRES_URL = os.environ.get("OFFLOAD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
HANDLER_SECONDS = float(os.environ.get("OFFLOAD_HANDLER_SECONDS", "0.02"))
SLOW_EVENT = os.environ.get("OFFLOAD_SLOW_EVENT", "")

logger = logging.getLogger("offload_tests.handler")

app = Celery(
    "offload_tests", broker=os.environ.get("OFFLOAD_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
)
LOG_FORMAT = "[%(levelname)s/%(processName)s] %(commet_event_type)s %(commet_event_id)s %(message)s"
app.conf.update(
    worker_log_format=LOG_FORMAT,
    worker_task_log_format=LOG_FORMAT,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_default_queue=os.environ.get("OFFLOAD_QUEUE", "commet_offload_tests"),
)


RECEIVER = contextvars.ContextVar("receiver", default="")


class Tracing(Observer):
    """Stands in for a tracer: the receiver injects its pid, the worker restores it."""

    def inject_context(self, token: Any) -> dict[str, str]:
        return {
            "traceparent": f"00-{os.getpid():032x}-{1:016x}-01",
            "receiver_pid": str(os.getpid()),
        }

    @contextlib.contextmanager
    def extract_context(self, context: Mapping[str, str]) -> Iterator[None]:
        reset = RECEIVER.set(context.get("receiver_pid", ""))
        try:
            yield
        finally:
            RECEIVER.reset(reset)


def record_effect(event: WebhookEvent) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {SCHEMA}.started (event_id, pid) VALUES (%s, %s)",
            (event.id, os.getpid()),
        )
        broken = conn.execute(
            f"SELECT 1 FROM {SCHEMA}.broken WHERE event_id = %s", (event.id,)
        ).fetchone()
        if broken:
            raise RuntimeError(f"handler for {event.id} is broken")
        logger.warning("recording effect")
        with conn.transaction():
            conn.execute(
                f"INSERT INTO {SCHEMA}.effects (event_id, event_type, pid, receiver_pid)"
                " VALUES (%s, %s, %s, %s)",
                (event.id, event.event, os.getpid(), RECEIVER.get() or None),
            )
            time.sleep(3.0 if event.id == SLOW_EVENT else HANDLER_SECONDS)


def report(exc: BaseException, subject: object) -> None:
    event_id = getattr(subject, "id", None)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {SCHEMA}.errors (event_id, error) VALUES (%s, %s)",
            (event_id, f"{type(exc).__name__}: {exc}"),
        )


offload = celery_offload(
    app,
    lambda: webhooks,
    queue=app.conf.task_default_queue,
    max_retries=int(os.environ.get("OFFLOAD_MAX_RETRIES", "12")),
    retry_backoff=0.25,
    retry_backoff_max=2.0,
    publish_timeout=3.0,
    dead_letter_queue=os.environ.get("OFFLOAD_DEAD_QUEUE", "commet_offload_tests.dead"),
)

webhooks = Webhooks(
    SECRET,
    idempotency_store=RedisStore(
        os.environ.get("OFFLOAD_REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix=os.environ.get("OFFLOAD_REDIS_PREFIX", "commet_offload_tests:"),
        lease_seconds=float(os.environ.get("OFFLOAD_LEASE_SECONDS", "4")),
    ),
    offload=offload,
    on_payload=record_effect,
    on_error=report,
    observer=Tracing(),
)

asgi = WebhookApp(webhooks)
