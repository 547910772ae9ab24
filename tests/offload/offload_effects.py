"""What the handlers of the task-queue tests do, shared by the Celery and Dramatiq apps.

Configured by environment (the tests set it for their subprocesses):

- ``OFFLOAD_BROKER``: AMQP URL (the test's TCP proxy in front of RabbitMQ);
- ``OFFLOAD_QUEUE``, ``OFFLOAD_DEAD_QUEUE``: this run's own queues;
- ``OFFLOAD_SCHEMA``: the PostgreSQL schema where handlers record their effects;
- ``OFFLOAD_REDIS_PREFIX``: this run's idempotency keys in Redis;
- ``OFFLOAD_SLOW_EVENT``: an event id whose handler takes 3 s (the one to kill);
- ``OFFLOAD_HANDLER_SECONDS``: how long every other handler takes.

Each handler writes, in one transaction, the event's effect row; the row that says a
handler started is written before (autocommit), so a test can kill it mid-handler.
Events listed in ``<schema>.broken`` fail their handler (for the dead-letter tests).
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

from commet_webhooks import Observer, WebhookEvent, Webhooks
from commet_webhooks.dispatch import Offload
from commet_webhooks.stores.redis import RedisStore

SECRET = os.environ.get("OFFLOAD_SECRET", "whsec_offload_tests")
SCHEMA = os.environ.get("OFFLOAD_SCHEMA", "offload_tests")
POSTGRES_URL = os.environ.get("OFFLOAD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
HANDLER_SECONDS = float(os.environ.get("OFFLOAD_HANDLER_SECONDS", "0.02"))
SLOW_EVENT = os.environ.get("OFFLOAD_SLOW_EVENT", "")
BROKER = os.environ.get("OFFLOAD_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("OFFLOAD_QUEUE", "commet_offload_tests")
DEAD_QUEUE = os.environ.get("OFFLOAD_DEAD_QUEUE", "commet_offload_tests.dead")
MAX_RETRIES = int(os.environ.get("OFFLOAD_MAX_RETRIES", "12"))
LOG_FORMAT = "[%(levelname)s/%(processName)s] %(commet_event_type)s %(commet_event_id)s %(message)s"

logger = logging.getLogger("offload_tests.handler")


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


def make_webhooks(offload: Offload) -> Webhooks:
    return Webhooks(
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
