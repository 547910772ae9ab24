"""Run Commet webhook handlers on Celery workers: ``Webhooks(offload=celery_offload(...))``.

    # myproject/hooks.py
    from celery import Celery
    from commet_webhooks import Webhooks
    from commet_webhooks.celery import celery_offload
    from commet_webhooks.stores.redis import RedisStore

    app = Celery("myproject", broker="amqp://guest:guest@127.0.0.1:5672//")
    webhooks = Webhooks(
        "whsec_...",
        idempotency_store=RedisStore("redis://127.0.0.1:6379/0"),
        offload=celery_offload(app, "myproject.hooks:webhooks"),
        on_payment_failed=dunning,
    )

The receiver answers Commet as soon as RabbitMQ has confirmed the message (publisher
confirms on a connection of our own, with a short timeout; a broker that does not
confirm in time is a 503, so Commet retries). ``celery -A myproject.hooks worker``
runs the task, which verifies the signature again and runs the handlers through
``webhooks.handle_offloaded`` — with the idempotency store, so a duplicate delivery, a
redelivered message or two workers racing run the handlers once.

The task is ``acks_late`` with ``reject_on_worker_lost``: a worker killed mid-handler
leaves its message unacknowledged and the broker hands it to another worker; the
store's lease (answer ``busy`` until it runs out) covers the rest. ``handler_error``,
``busy`` and ``store_unavailable`` are retried with exponential backoff up to
``max_retries``; then the delivery becomes a *dead letter*: a JSON record on the durable
queue ``commet_webhooks.dead_letters`` (or your ``dead_letter=`` callable) and a call to
``on_error``. :meth:`CeleryOffload.replay_dead_letters` sends them through again.

Requires ``celery`` (``pip install commet-webhooks[celery]``). See docs/offload.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

try:
    import amqp  # type: ignore[import-untyped]
    import celery  # type: ignore[import-untyped]  # noqa: F401 - the extra's check
    from celery.exceptions import Reject  # type: ignore[import-untyped]
    from kombu import Connection, Queue  # type: ignore[attr-defined]
except ImportError as exc:  # an optional extra is not installed
    from ._optional import missing_extra

    raise missing_extra("commet_webhooks.celery", "celery", exc) from exc

from ._offload import OffloadedDelivery
from .offload import (
    DEAD_OUTCOMES,
    DONE_OUTCOMES,
    RETRY_OUTCOMES,
    DeadLetter,
    WebhooksSource,
    backoff,
    delivery_scope,
    install_log_context,
    parse_message,
    report_dead_letter,
    resolve_webhooks,
    run_delivery,
)

__all__ = [
    "DEFAULT_DEAD_LETTER_QUEUE",
    "DEFAULT_TASK_NAME",
    "CeleryOffload",
    "DeadLetter",
    "celery_offload",
]

logger = logging.getLogger("commet_webhooks.celery")

DEFAULT_TASK_NAME = "commet_webhooks.deliver"
DEFAULT_DEAD_LETTER_QUEUE = "commet_webhooks.dead_letters"


class _Pipeline:
    """Group-confirmed publishing on one AMQP connection, owned by one thread.

    Callers hand over ready messages and wait on a future. The thread publishes
    whatever is waiting back to back, then waits once for RabbitMQ's confirms (one
    ``basic.ack`` with ``multiple`` usually covers the whole batch): the round trip and
    RabbitMQ's disk sync are shared by every delivery that arrived meanwhile, instead
    of paid one after another. A nack, a cut connection or no confirm within the
    timeout fails the waiting futures (the receiver answers 503) and the next batch
    reconnects.
    """

    MAX_BATCH = 256

    def __init__(self, connect: Callable[[], Any], timeout: float) -> None:
        self._connect = connect
        self._timeout = timeout
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._pending: dict[int, Future[None]] = {}

    def submit(self, outgoing: Any) -> Future[None]:
        if self._thread is None or self._pid != os.getpid():
            with self._lock:
                if self._thread is None or self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name="commet-webhooks-confirms", daemon=True
                    )
                    self._thread.start()
        future: Future[None] = Future()
        self._queue.put((outgoing, future))
        return future

    def _on_ack(self, tag: int, multiple: bool) -> None:
        for done in [t for t in self._pending if t <= tag] if multiple else [tag]:
            future = self._pending.pop(done, None)
            if future is not None:
                future.set_result(None)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        for done in [t for t in self._pending if t <= tag] if multiple else [tag]:
            future = self._pending.pop(done, None)
            if future is not None:
                future.set_exception(ConnectionError("the broker refused the message (nack)"))

    def _open(self) -> tuple[Any, Any]:
        connection = self._connect()
        connection.connect()
        channel = connection.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        return connection, channel

    def _run(self) -> None:
        connection: Any = None
        channel: Any = None
        declared: set[str] = set()
        tag = 0
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.MAX_BATCH:
                    batch.append(self._queue.get_nowait())
            try:
                if connection is None:
                    connection, channel = self._open()
                    declared, tag = set(), 0
                for outgoing, future in batch:
                    if not future.set_running_or_notify_cancel():
                        continue
                    target, message = outgoing
                    if target.name not in declared:
                        target(channel).declare()
                        declared.add(target.name)
                    channel.basic_publish(
                        message, exchange=target.exchange.name, routing_key=target.routing_key
                    )
                    tag += 1
                    self._pending[tag] = future
                deadline = time.monotonic() + self._timeout
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("no publisher confirm from the broker in time")
                    connection.drain_events(timeout=remaining)
            except Exception as exc:
                # Everything of this batch that is not confirmed fails now (503),
                # published or not: the broker may have it, and the store dedupes.
                self._pending.clear()
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                with contextlib.suppress(Exception):
                    connection.release()
                connection = channel = None


class CeleryOffload:
    """The ``Offload`` for one Celery app; see :func:`celery_offload`."""

    def __init__(
        self,
        app: Any,
        webhooks: WebhooksSource,
        *,
        name: str = DEFAULT_TASK_NAME,
        queue: str | None = None,
        max_retries: int = 8,
        retry_backoff: float = 2.0,
        retry_backoff_max: float = 600.0,
        publish_timeout: float = 5.0,
        dead_letter_queue: str = DEFAULT_DEAD_LETTER_QUEUE,
        dead_letter: Callable[[DeadLetter], None] | None = None,
        publish_threads: int = 8,
        log_context: bool = True,
    ) -> None:
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be a non-negative integer")
        if not retry_backoff > 0 or not retry_backoff_max >= retry_backoff:
            raise ValueError("retry_backoff must be positive and at most retry_backoff_max")
        if not publish_timeout > 0:
            raise ValueError("publish_timeout must be positive")
        if not isinstance(publish_threads, int) or publish_threads <= 0:
            raise ValueError("publish_threads must be a positive integer")
        self.app = app
        self.queue = queue
        self.max_retries = max_retries
        self.retry_backoff = float(retry_backoff)
        self.retry_backoff_max = float(retry_backoff_max)
        self.publish_timeout = float(publish_timeout)
        self.dead_letter_queue = dead_letter_queue
        self.publish_threads = publish_threads
        self.log_context = log_context
        self._dead_letter = dead_letter
        self._webhooks = resolve_webhooks(webhooks)
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # producers on confirmed connections, this process's
        self._pid = os.getpid()
        self._executor: ThreadPoolExecutor | None = None
        self._pipeline: _Pipeline | None = None
        if self._connection().transport.driver_type == "amqp":
            self._pipeline = _Pipeline(self._plain_connection, self.publish_timeout)
        if log_context:
            install_log_context()  # records get the attributes before the first task
        offload = self

        @app.task(  # type: ignore[untyped-decorator]
            bind=True,
            name=name,
            acks_late=True,
            reject_on_worker_lost=True,
            ignore_result=True,
            max_retries=None,
        )
        def deliver(task: Any, message: dict[str, Any]) -> str:
            return str(offload.run(message, attempt=int(task.request.retries or 0)))

        self.task: Any = deliver

    def __repr__(self) -> str:
        return f"CeleryOffload(task={self.task.name!r}, queue={self.queue!r})"

    # ------------------------------------------------------------ receiver side

    def publish(self, delivery: OffloadedDelivery) -> None:
        """Send the task and wait for the broker's confirm; raise when there is none."""
        if self._pipeline is None:
            self._send(delivery.to_message())
            return
        self._pipeline.submit(self._outgoing(delivery.to_message())).result(
            self.publish_timeout * 2 + 1
        )

    async def apublish(self, delivery: OffloadedDelivery) -> None:
        """:meth:`publish` without blocking the event loop."""
        if self._pipeline is None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._threads(), self._send, delivery.to_message())
            return
        future = self._pipeline.submit(self._outgoing(delivery.to_message()))
        await asyncio.wait_for(asyncio.wrap_future(future), self.publish_timeout * 2 + 1)

    def _threads(self) -> ThreadPoolExecutor:
        self._check_pid()
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.publish_threads, thread_name_prefix="commet-webhooks-publish"
                    )
        return self._executor

    def _check_pid(self) -> None:
        """After a fork, never touch the parent's sockets or threads."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._idle, self._executor, self._pid = [], None, os.getpid()

    def _connection(self) -> Any:
        options = dict(self.app.conf.broker_transport_options or {})
        # Publisher confirms on every channel; a dead broker fails the publish now
        # (one connection attempt, no silent retry loop) so the receiver answers 503.
        options.update(confirm_publish=True, max_retries=0, interval_start=0)
        return Connection(  # type: ignore[no-untyped-call]
            self.app.conf.broker_write_url or self.app.conf.broker_url,
            transport_options=options,
            connect_timeout=self.publish_timeout,
            heartbeat=0,
            ssl=self.app.conf.broker_use_ssl,
        )

    def _acquire(self) -> Any:
        self._check_pid()
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = self._connection()
        try:
            connection.connect()
            return connection.Producer()
        except BaseException:
            connection.release()
            raise

    def _give_back(self, producer: Any, *, broken: bool) -> None:
        if not broken and self._pid == os.getpid():
            with self._lock:
                if len(self._idle) < self.publish_threads:
                    self._idle.append(producer)
                    return
        with contextlib.suppress(Exception):  # closing a connection that already failed
            producer.connection.release()

    def _plain_connection(self) -> Any:
        connection = self._connection()
        connection.transport_options.pop("confirm_publish", None)  # confirms are ours here
        return connection

    def _build(
        self, message: dict[str, Any], retries: int = 0, countdown: float | None = None
    ) -> tuple[Any, Any]:
        """Celery's own message builder (protocol 2), and the queue it goes to."""
        task_id = str(uuid.uuid4())
        built = self.app.amqp.as_task_v2(
            task_id,
            self.task.name,
            args=(message,),
            kwargs={},
            retries=retries,
            countdown=countdown,
            ignore_result=True,
            argsrepr="(<commet delivery>,)",  # never the body in Celery's logs
        )
        target = self.app.amqp.queues[self.queue or self.app.conf.task_default_queue]
        return built, target

    def _outgoing(self, message: dict[str, Any]) -> tuple[Any, Any]:
        """(queue, AMQP message) for the pipeline."""
        built, target = self._build(message)
        body = json.dumps(built.body, separators=(",", ":")).encode()
        return target, amqp.Message(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            application_headers=built.headers,
            **built.properties,
        )

    def _send(
        self, message: dict[str, Any], *, retries: int = 0, countdown: float | None = None
    ) -> None:
        """One publish on a pooled connection, confirmed before it returns."""
        built, queue = self._build(message, retries, countdown)
        producer = self._acquire()
        broken = True
        try:
            producer.publish(
                built.body,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
                headers=built.headers,
                serializer="json",
                delivery_mode=2,
                retry=False,
                timeout=self.publish_timeout,
                confirm_timeout=self.publish_timeout,
                **built.properties,
            )
            broken = False
        finally:
            self._give_back(producer, broken=broken)

    # ------------------------------------------------------------ worker side

    def run(self, message: dict[str, Any], *, attempt: int = 0) -> str:
        """One attempt at a delivery (the task's body); returns what became of it."""
        webhooks = self._webhooks()
        delivery = parse_message(message, attempt)
        if isinstance(delivery, DeadLetter):
            self._give_up(webhooks, delivery)
            return "dead_letter"
        with delivery_scope(webhooks, delivery):
            outcome, subject = run_delivery(webhooks, delivery)
            if outcome in DONE_OUTCOMES:
                return outcome.value
            if outcome in RETRY_OUTCOMES and attempt < self.max_retries:
                delay = backoff(attempt, self.retry_backoff, self.retry_backoff_max)
                logger.warning(
                    "%s %s: %s, retry %d of %d in %.1f s",
                    delivery.event_type,
                    delivery.event_id or "",
                    outcome.value,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                try:
                    self._send(message, retries=attempt + 1, countdown=delay)
                except Exception as exc:
                    # The copy is not in the broker: keep the original there instead.
                    raise Reject(exc, requeue=True) from exc
                return "retrying"
            if outcome not in DEAD_OUTCOMES and outcome not in RETRY_OUTCOMES:
                logger.error("unexpected outcome %s for an offloaded delivery", outcome.value)
            self._give_up(webhooks, DeadLetter(message, outcome.value, attempt + 1), subject)
            return "dead_letter"

    def _give_up(self, webhooks: Any, record: DeadLetter, subject: Any = None) -> None:
        try:
            if self._dead_letter is not None:
                self._dead_letter(record)
            else:
                self._publish_dead_letter(record)
        except Exception as exc:
            logger.error("could not keep the dead letter (%s); requeued", type(exc).__name__)
            raise Reject(exc, requeue=True) from exc
        report_dead_letter(webhooks, record, subject)

    # ------------------------------------------------------------ dead letters

    def _dead_queue(self) -> Any:
        return Queue(  # type: ignore[no-untyped-call]
            self.dead_letter_queue, routing_key=self.dead_letter_queue, durable=True
        )

    def _publish_dead_letter(self, record: DeadLetter) -> None:
        producer = self._acquire()
        broken = True
        try:
            queue = self._dead_queue()
            producer.publish(
                record.to_record(),
                exchange="",
                routing_key=self.dead_letter_queue,
                declare=[queue],
                serializer="json",
                delivery_mode=2,
                retry=False,
                timeout=self.publish_timeout,
                confirm_timeout=self.publish_timeout,
            )
            broken = False
        finally:
            self._give_back(producer, broken=broken)

    def peek_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, left in their queue."""
        found: list[DeadLetter] = []
        with self._connection() as connection:
            queue = self._dead_queue()(connection.default_channel)
            queue.declare()
            while len(found) < limit:
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                found.append(DeadLetter.from_record(message.payload))
            # Closing the connection unacknowledged puts every message back.
        return found

    def replay_dead_letters(self, limit: int | None = None) -> int:
        """Send dead letters through the task again (attempts counted afresh).

        Each is removed from the dead-letter queue only after the broker confirmed its
        new task message; returns how many were replayed.
        """
        replayed = 0
        with self._connection() as connection:
            queue = self._dead_queue()(connection.default_channel)
            # Only those there now: a replayed message that fails again comes back meanwhile.
            queue.declare()
            _name, waiting, _consumers = queue.queue_declare(passive=True)
            if limit is None or limit > waiting:
                limit = int(waiting)
            while replayed < limit:
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                record = DeadLetter.from_record(message.payload)
                self._send(record.message)
                message.ack()
                replayed += 1
        return replayed

    def close(self) -> None:
        """Close this process's publishing connections and threads."""
        with self._lock:
            idle, self._idle = self._idle, []
            executor, self._executor = self._executor, None
        for producer in idle:
            self._give_back(producer, broken=True)
        if executor is not None:
            executor.shutdown(wait=False)


def celery_offload(app: Any, webhooks: WebhooksSource, **options: Any) -> CeleryOffload:
    """Register the delivery task on ``app``; return the ``Offload`` for ``Webhooks``.

    ``webhooks`` is the worker's ``Webhooks`` — usually the receiver's own, named as
    ``"module:attribute"`` or a zero-argument callable so it can be resolved after the
    receiver that takes this offload exists (once per worker process). Options:
    ``name`` (the task's name), ``queue``, ``max_retries`` (8), ``retry_backoff`` (2 s,
    doubled per attempt), ``retry_backoff_max`` (600 s), ``publish_timeout`` (5 s: the
    broker's confirm must come within it), ``dead_letter_queue``, ``dead_letter`` (a
    callable taking a :class:`DeadLetter`, instead of the queue), ``publish_threads``
    and ``log_context`` (put the event on worker log records; True).
    """
    return CeleryOffload(app, webhooks, **options)
