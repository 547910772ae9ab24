"""The Celery offload against a real RabbitMQ, the task body run in this process."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
from celery import Celery
from celery.exceptions import Reject
from offload_helpers import TcpProxy, delete_queues, queue_depth

from commet_webhooks import MemoryStore, OffloadedDelivery, Outcome, WebhookEvent, Webhooks
from commet_webhooks.celery import CeleryOffload, celery_offload
from commet_webhooks.offload import DeadLetter, DeadLetteredError
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_celery_unit"


class Worker:
    """A receiver/worker pair over one Celery app, with a handler that can be broken."""

    def __init__(self, proxy: TcpProxy, **options: Any) -> None:
        run = uuid.uuid4().hex[:10]
        self.broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
        self.queue = f"commet_celery_unit.{run}"
        self.app = Celery(f"unit{run}", broker=self.broker)
        self.ran: list[WebhookEvent] = []
        self.errors: list[tuple[BaseException, Any]] = []
        self.broken = False
        self.trace_ids: list[int] = []
        self.offload: CeleryOffload = celery_offload(
            self.app,
            lambda: self.webhooks,
            queue=self.queue,
            dead_letter_queue=f"{self.queue}.dead",
            retry_backoff=0.5,
            retry_backoff_max=4,
            publish_timeout=2,
            **options,
        )
        self.webhooks = Webhooks(
            SECRET,
            idempotency_store=MemoryStore(),
            offload=self.offload,
            on_payload=self.handler,
            on_error=lambda exc, subject: self.errors.append((exc, subject)),
        )

    def handler(self, event: WebhookEvent) -> None:
        logging.getLogger("unit.handler").warning("handling")
        if self.broken:
            raise RuntimeError("handler is broken")
        from opentelemetry import trace

        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        self.ran.append(event)

    def take(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next task message in the queue: (delivery message, headers)."""
        with kombu.Connection(self.broker) as conn:
            message = kombu.Queue(self.queue)(conn.default_channel).get(
                no_ack=True, accept=["json"]
            )
            assert message is not None, "the queue is empty"
            args, _kwargs, _embed = message.payload
            return args[0], message.headers

    def close(self) -> None:
        self.offload.close()
        delete_queues(self.broker, self.queue, f"{self.queue}.dead")


@pytest.fixture
def worker(proxy: TcpProxy) -> Iterator[Worker]:
    made = Worker(proxy, max_retries=2)
    yield made
    made.close()


def delivery(event_type: str = "invoice.created") -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type), SECRET)


def test_a_queued_delivery_is_in_the_broker_and_runs_once(worker: Worker) -> None:
    body, headers = delivery()
    response = worker.webhooks.handle_sync(body, headers)
    assert (response.status, response.outcome) == (200, Outcome.QUEUED)
    assert worker.ran == []
    message, task_headers = worker.take()
    assert task_headers["task"] == "commet_webhooks.deliver" and task_headers["retries"] == 0
    assert OffloadedDelivery.from_message(message).body == body
    assert worker.offload.run(message) == "ok"
    assert worker.offload.run(message) == "duplicate"  # a redelivered copy
    assert [e.id for e in worker.ran] == [json.loads(body)["id"]]


@pytest.mark.anyio
async def test_async_receiver_publishes_off_the_loop(worker: Worker) -> None:
    responses = [await worker.webhooks.handle(*delivery()) for _ in range(5)]
    assert {r.outcome for r in responses} == {Outcome.QUEUED}
    assert queue_depth(worker.broker, worker.queue)[0] == 5


def test_broker_down_is_a_503_and_the_next_publish_reconnects(
    worker: Worker, proxy: TcpProxy
) -> None:
    assert worker.webhooks.handle_sync(*delivery()).status == 200  # a pooled connection now
    proxy.stop()
    for _ in range(2):  # the pooled connection is cut, then a new one is refused
        response = worker.webhooks.handle_sync(*delivery())
        assert (response.status, response.outcome) == (503, Outcome.OFFLOAD_UNAVAILABLE)
    assert len(worker.errors) == 2 and "amqp://" not in repr(worker.errors)
    proxy.start()
    assert worker.webhooks.handle_sync(*delivery()).status == 200
    assert queue_depth(worker.broker, worker.queue)[0] == 2


def test_handler_errors_retry_with_backoff_then_dead_letter_then_replay(worker: Worker) -> None:
    body, headers = delivery("payment.failed")
    worker.webhooks.handle_sync(body, headers)
    message, _ = worker.take()
    worker.broken = True
    assert worker.offload.run(message, attempt=0) == "retrying"
    again, task_headers = worker.take()
    assert again == message and task_headers["retries"] == 1 and task_headers["eta"]
    assert worker.offload.run(message, attempt=1) == "retrying"
    assert worker.take()[1]["retries"] == 2
    assert worker.offload.run(message, attempt=2) == "dead_letter"  # max_retries=2
    assert queue_depth(worker.broker, worker.queue)[0] == 0
    # on_error saw each failure, then the dead letter with the event.
    dead = [(e, s) for e, s in worker.errors if isinstance(e, DeadLetteredError)]
    assert len(dead) == 1 and dead[0][0].record.reason == "handler_error"
    assert dead[0][0].record.attempts == 3 and dead[0][1].id == json.loads(body)["id"]
    assert sum(isinstance(e, RuntimeError) for e, _ in worker.errors) == 3
    [record] = worker.offload.peek_dead_letters()
    assert record.delivery().body == body and record.event_type == "payment.failed"
    assert len(worker.offload.peek_dead_letters()) == 1  # peeking leaves it there
    # Fixed, replayed: it runs once, and the dead-letter queue is empty.
    worker.broken = False
    assert worker.offload.replay_dead_letters() == 1
    replayed, task_headers = worker.take()
    assert task_headers["retries"] == 0 and worker.offload.run(replayed) == "ok"
    assert len(worker.ran) == 1 and worker.offload.peek_dead_letters() == []


def test_busy_and_store_down_are_retried(proxy: TcpProxy) -> None:
    made = Worker(proxy, max_retries=1)
    try:
        store = made.webhooks.idempotency_store
        assert store is not None
        body, headers = delivery()
        made.webhooks.handle_sync(body, headers)
        message, _ = made.take()
        event_id = json.loads(body)["id"]
        store.claim(event_id, "another-worker")  # someone else holds the lease
        assert made.offload.run(message) == "retrying"
        assert made.offload.run(message, attempt=1) == "dead_letter"
        [record] = made.offload.peek_dead_letters()
        assert record.reason == "busy" and made.ran == []
    finally:
        made.close()


def test_a_forged_or_malformed_message_runs_nothing_and_is_kept(worker: Worker) -> None:
    body, _ = delivery()
    forged = OffloadedDelivery(body, "0" * 64, None, "invoice.created", "2026-01-01T00:00:00Z")
    assert worker.offload.run(forged.to_message()) == "dead_letter"
    assert worker.offload.run({"body": 1}) == "dead_letter"
    reasons = sorted(r.reason.split(":")[0] for r in worker.offload.peek_dead_letters())
    assert reasons == ["invalid_signature", "malformed message"]
    assert worker.ran == []


def test_dead_letters_go_to_a_callable_and_a_failing_one_requeues(proxy: TcpProxy) -> None:
    kept: list[DeadLetter] = []
    made = Worker(proxy, max_retries=0, dead_letter=kept.append)
    try:
        made.broken = True
        made.webhooks.handle_sync(*delivery())
        message, _ = made.take()
        assert made.offload.run(message) == "dead_letter" and kept[0].reason == "handler_error"

        def refuse(record: DeadLetter) -> None:
            raise ConnectionError("table unreachable")

        made.offload._dead_letter = refuse
        with pytest.raises(Reject) as caught:  # the broker keeps the original message
            made.offload.run(message)
        assert caught.value.requeue is True
    finally:
        made.close()


def test_worker_log_records_and_tracing_context(
    worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[dict[str, str]] = []

    class Tracing:
        def delivery_started(self, headers: Any) -> None: ...
        def admitted(self, *args: Any) -> None: ...
        def delivery_finished(self, *args: Any) -> None: ...
        def handler(self, *args: Any) -> Any:
            import contextlib

            return contextlib.nullcontext()

        store_call = handler

        def inject_context(self, token: Any) -> dict[str, str]:
            return {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

        def extract_context(self, context: dict[str, str]) -> Any:
            seen.append(context)
            return None

    worker.webhooks.observer = Tracing()  # type: ignore[assignment]
    body, headers = delivery("payment.received")
    worker.webhooks.handle_sync(body, headers)
    message, _ = worker.take()
    assert message["context"]["traceparent"].startswith("00-0af7")
    with caplog.at_level(logging.WARNING, logger="unit.handler"):
        assert worker.offload.run(message) == "ok"
    assert seen == [message["context"]]
    # OpenTelemetry's current context in the handler is the receiver's trace.
    assert worker.trace_ids == [0x0AF7651916CD43DD8448EB211C80319C]
    [record] = [r for r in caplog.records if r.name == "unit.handler"]
    assert record.commet_event_id == json.loads(body)["id"]  # type: ignore[attr-defined]
    assert record.commet_event_type == "payment.received"  # type: ignore[attr-defined]
    outside = logging.getLogger("unit.handler").makeRecord("x", 30, "f", 1, "m", (), None)
    assert outside.commet_event_id == "-"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_concurrent_deliveries_cut_mid_flight_are_each_200_or_503(
    worker: Worker, proxy: TcpProxy
) -> None:
    import asyncio

    deliveries = [delivery() for _ in range(120)]

    async def cut_soon() -> None:
        await asyncio.sleep(0.005)
        proxy.stop()

    results = await asyncio.gather(
        cut_soon(), *(worker.webhooks.handle(b, h) for b, h in deliveries)
    )
    statuses = [r.status for r in results[1:]]
    assert set(statuses) <= {200, 503} and 503 in statuses
    proxy.start()
    # Whatever was answered 200 is in the queue (a 503 may be there too: at least once).
    queued = queue_depth(worker.broker, worker.queue)[0]
    assert queued >= statuses.count(200)
    assert (await worker.webhooks.handle(*delivery())).status == 200


def test_a_retry_long_after_the_event_is_not_refused_for_its_age(proxy: TcpProxy) -> None:
    made = Worker(proxy, max_retries=1)
    try:
        made.webhooks.tolerance = 300  # the receiver refuses events older than 5 minutes
        old = sample_event("invoice.created", timestamp="2026-01-01T00:00:00.000Z")
        body, headers = signed_request(old, SECRET)
        assert made.webhooks.handle_sync(body, headers).status == 400  # at the door: too old
        # A delivery the receiver accepted in time, handled after its retries' backoff:
        signature = {k.lower(): v for k, v in headers.items()}["x-commet-signature"]
        delivery = OffloadedDelivery(body, signature, old["id"],
                                     "invoice.created", "2026-01-01T00:00:01.000Z")  # fmt: skip
        assert made.offload.run(delivery.to_message()) == "ok"
        assert [e.id for e in made.ran] == [old["id"]]
    finally:
        made.close()
