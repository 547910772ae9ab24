"""Run Commet webhook handlers on Dramatiq workers (RabbitMQ): the second engine.

    # myproject/hooks.py
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from commet_webhooks import Webhooks
    from commet_webhooks.offload.dramatiq import dramatiq_offload

    broker = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:5672/", confirm_delivery=True)
    dramatiq.set_broker(broker)
    webhooks = Webhooks(
        "whsec_...",
        idempotency_store=...,
        offload=dramatiq_offload(broker, "myproject.hooks:webhooks"),
        on_payment_failed=dunning,
    )

``dramatiq myproject.hooks`` runs the workers. Why Dramatiq as well as Celery: it
acknowledges a message only after the actor returned (a killed worker's message goes
back to the queue without extra settings), waits for RabbitMQ's publisher confirms with
``confirm_delivery=True``, retries with exponential backoff in its ``Retries``
middleware and keeps given-up messages in a dead-letter queue of its own
(``<queue>.XQ``, for a week by default) — exactly the semantics this offload needs,
in a smaller install than Celery.

The actor verifies the signature again and runs ``webhooks.handle_offloaded`` (with the
idempotency store). ``handler_error``, ``busy`` and ``store_unavailable`` raise
:class:`RetryLater`, which Dramatiq retries up to ``max_retries``; then (and at once for
a forged or malformed message) the delivery is reported to ``on_error`` and left in
``<queue>.XQ``, from which :meth:`DramatiqOffload.replay_dead_letters` sends it again.

Requires ``dramatiq[rabbitmq]`` (``pip install commet-webhooks[dramatiq]``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

try:
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.common import xq_name
    from dramatiq.middleware import CurrentMessage
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.offload.dramatiq", "dramatiq", exc) from exc

from .._offload import OffloadedDelivery
from . import (
    DEAD_OUTCOMES,
    DONE_OUTCOMES,
    RETRY_OUTCOMES,
    DeadLetter,
    WebhooksSource,
    delivery_scope,
    install_log_context,
    parse_message,
    report_dead_letter,
    resolve_webhooks,
    run_delivery,
)

__all__ = ["DEFAULT_ACTOR_NAME", "DramatiqOffload", "GaveUp", "RetryLater", "dramatiq_offload"]

logger = logging.getLogger("commet_webhooks.dramatiq")

DEFAULT_ACTOR_NAME = "commet_webhooks_deliver"
_RETRY_STATE = ("retries", "traceback", "eta", "requeue_timestamp")


class RetryLater(dramatiq.Retry):
    """Raised by the actor for an outcome worth another attempt; Dramatiq backs off
    (a ``dramatiq.Retry``: logged as a retry, not as an error with a traceback)."""


class GaveUp(Exception):
    """Raised by the actor when a delivery becomes a dead letter (never retried)."""

    def __init__(self, record: DeadLetter) -> None:
        self.record = record
        super().__init__(f"{record.event_type} {record.event_id or ''}: {record.reason}")


class DramatiqOffload:
    """The ``Offload`` for one Dramatiq broker; see :func:`dramatiq_offload`."""

    def __init__(
        self,
        broker: Any,
        webhooks: WebhooksSource,
        *,
        actor_name: str = DEFAULT_ACTOR_NAME,
        queue_name: str = "commet_webhooks",
        max_retries: int = 8,
        min_backoff: float = 2.0,
        max_backoff: float = 600.0,
        dead_letter: Callable[[DeadLetter], None] | None = None,
        publish_threads: int = 8,
        log_context: bool = True,
    ) -> None:
        if isinstance(broker, RabbitmqBroker) and not broker.confirm_delivery:
            raise ValueError(
                "the RabbitmqBroker must be created with confirm_delivery=True, so a "
                "delivery is acknowledged only once RabbitMQ has it"
            )
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be a non-negative integer")
        if not min_backoff > 0 or not max_backoff >= min_backoff:
            raise ValueError("min_backoff must be positive and at most max_backoff")
        self.broker = broker
        self.queue_name = queue_name
        self.max_retries = max_retries
        self.publish_threads = publish_threads
        self._dead_letter = dead_letter
        self._webhooks = resolve_webhooks(webhooks)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        if log_context:
            install_log_context()
        if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
            broker.add_middleware(CurrentMessage())

        def retry_when(retries: int, exc: BaseException) -> bool:
            return not isinstance(exc, GaveUp) and retries < max_retries

        def deliver(message: dict[str, Any]) -> None:
            self.run(message)  # Dramatiq expects None without a results backend

        self.actor: Any = dramatiq.actor(
            actor_name=actor_name,
            throws=(GaveUp,),
            queue_name=queue_name,
            broker=broker,
            retry_when=retry_when,
            min_backoff=round(min_backoff * 1000),
            max_backoff=round(max_backoff * 1000),
        )(deliver)

    def __repr__(self) -> str:
        return f"DramatiqOffload(actor={self.actor.actor_name!r}, queue={self.queue_name!r})"

    # ------------------------------------------------------------ receiver side

    def publish(self, delivery: OffloadedDelivery) -> None:
        """Enqueue the message; with ``confirm_delivery`` this waits for RabbitMQ's confirm."""
        self.actor.send(delivery.to_message())

    async def apublish(self, delivery: OffloadedDelivery) -> None:
        """:meth:`publish` on this offload's own threads (pika is blocking)."""
        if self._pid != os.getpid():
            self._executor, self._pid = None, os.getpid()
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.publish_threads, thread_name_prefix="commet-webhooks-publish"
                    )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.publish, delivery)

    # ------------------------------------------------------------ worker side

    def run(self, message: dict[str, Any]) -> str:
        """The actor: one attempt at a delivery."""
        current = CurrentMessage.get_current_message()
        attempt = int(current.options.get("retries", 0)) if current is not None else 0
        webhooks = self._webhooks()
        delivery = parse_message(message, attempt)
        if isinstance(delivery, DeadLetter):
            self._give_up(webhooks, delivery)
        with delivery_scope(webhooks, delivery):
            outcome, subject = run_delivery(webhooks, delivery)
            if outcome in DONE_OUTCOMES:
                return outcome.value
            if outcome in RETRY_OUTCOMES and attempt < self.max_retries:
                logger.warning(
                    "%s %s: %s, retry %d of %d",
                    delivery.event_type,
                    delivery.event_id or "",
                    outcome.value,
                    attempt + 1,
                    self.max_retries,
                )
                raise RetryLater(outcome.value)
            if outcome not in DEAD_OUTCOMES and outcome not in RETRY_OUTCOMES:
                logger.error("unexpected outcome %s for an offloaded delivery", outcome.value)
            self._give_up(webhooks, DeadLetter(message, outcome.value, attempt + 1), subject)
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_up(self, webhooks: Any, record: DeadLetter, subject: Any = None) -> NoReturn:
        """Report, then fail the message: Dramatiq moves it to ``<queue>.XQ``."""
        if self._dead_letter is not None:
            self._dead_letter(record)  # raising here retries the message instead
        report_dead_letter(webhooks, record, subject)
        raise GaveUp(record)

    # ------------------------------------------------------------ dead letters

    def _dead_channel(self) -> Any:
        if not isinstance(self.broker, RabbitmqBroker):
            raise NotImplementedError("dead letters are read from RabbitMQ's <queue>.XQ only")
        self.broker.declare_queue(self.queue_name, ensure=True)
        return self.broker.channel

    def peek_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, left in ``<queue>.XQ`` (ready again on return)."""
        name = xq_name(self.queue_name)
        channel = self._dead_channel()
        found: list[DeadLetter] = []
        try:
            while len(found) < limit:
                method, _properties, body = channel.basic_get(name)
                if method is None:
                    break
                found.append(_record(dramatiq.Message.decode(body)))
        finally:
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        # RabbitMQ puts them back a moment after the nack: until they are ready again, a
        # replay right after this peek would count none of them.
        deadline = time.monotonic() + 1.0  # past it, another reader has taken some
        while channel.queue_declare(name, passive=True).method.message_count < len(found):
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return found

    def replay_dead_letters(self, limit: int | None = None) -> int:
        """Enqueue dead letters again (attempts counted afresh); each leaves ``.XQ`` only
        after RabbitMQ confirmed its copy. Returns how many were replayed."""
        channel = self._dead_channel()
        # Only those there now: a replayed message that fails again comes back meanwhile.
        waiting = channel.queue_declare(xq_name(self.queue_name), passive=True).method
        if limit is None or limit > waiting.message_count:
            limit = int(waiting.message_count)
        replayed = 0
        while replayed < limit:
            method, _properties, body = channel.basic_get(xq_name(self.queue_name))
            if method is None:
                break
            message = dramatiq.Message.decode(body)
            options = {k: v for k, v in message.options.items() if k not in _RETRY_STATE}
            try:
                self.broker.enqueue(
                    dataclasses.replace(message, queue_name=self.queue_name, options=options)
                )
            except BaseException:
                channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)
                raise
            channel.basic_ack(delivery_tag=method.delivery_tag)
            replayed += 1
        return replayed


def _record(message: Any) -> DeadLetter:
    args: tuple[Any, ...] = tuple(message.args or ({},))
    payload = args[0] if isinstance(args[0], dict) else {"raw": repr(args[0])}
    retries = int(message.options.get("retries", 0))
    return DeadLetter(payload, _last_error(message), retries)


def _last_error(message: Any) -> str:
    text = str(message.options.get("traceback") or "").strip().splitlines()
    return text[-1] if text else "unknown"


def dramatiq_offload(broker: Any, webhooks: WebhooksSource, **options: Any) -> DramatiqOffload:
    """Declare the delivery actor on ``broker``; return the ``Offload`` for ``Webhooks``.

    ``webhooks`` as for :func:`commet_webhooks.celery.celery_offload`. Options:
    ``actor_name``, ``queue_name`` (``commet_webhooks``), ``max_retries`` (8),
    ``min_backoff`` (2 s) and ``max_backoff`` (600 s), ``dead_letter`` (a callable also
    given each :class:`DeadLetter`), ``publish_threads``, ``log_context``.
    """
    return DramatiqOffload(broker, webhooks, **options)
