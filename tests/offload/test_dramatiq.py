"""The Dramatiq offload against a real RabbitMQ, with Dramatiq's own worker in this process."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from offload_helpers import TcpProxy, delete_queues, queue_depth, wait_until

from commet_webhooks import MemoryStore, OffloadedDelivery, Outcome, WebhookEvent, Webhooks
from commet_webhooks.offload import DeadLetteredError
from commet_webhooks.offload.dramatiq import DramatiqOffload, dramatiq_offload
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_dramatiq_unit"


class App:
    def __init__(self, proxy: TcpProxy, **options: Any) -> None:
        self.queue = f"commet_dramatiq_unit.{uuid.uuid4().hex[:10]}"
        self.url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        self.broker = RabbitmqBroker(url=self.url, confirm_delivery=True)
        self.ran: list[WebhookEvent] = []
        self.errors: list[tuple[BaseException, Any]] = []
        self.broken = False
        self.lock = threading.Lock()
        self.offload: DramatiqOffload = dramatiq_offload(
            self.broker,
            lambda: self.webhooks,
            queue_name=self.queue,
            min_backoff=0.05,
            max_backoff=0.2,
            **options,
        )
        self.webhooks = Webhooks(
            SECRET,
            idempotency_store=MemoryStore(),
            offload=self.offload,
            on_payload=self.handler,
            on_error=lambda exc, subject: self.errors.append((exc, subject)),
        )
        self.worker: Worker | None = None

    def handler(self, event: WebhookEvent) -> None:
        if self.broken:
            raise RuntimeError("handler is broken")
        with self.lock:
            self.ran.append(event)

    def start_worker(self) -> None:
        self.worker = Worker(self.broker, worker_threads=2, worker_timeout=50)
        self.worker.start()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.broker.close()
        kombu_url = self.url.replace("/%2F", "//")
        delete_queues(kombu_url, self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ")


@pytest.fixture
def app(proxy: TcpProxy) -> Iterator[App]:
    made = App(proxy, max_retries=2)
    yield made
    made.close()


def delivery(event_type: str = "invoice.created") -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type), SECRET)


def test_the_broker_must_confirm(proxy: TcpProxy) -> None:
    broker = RabbitmqBroker(url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    with pytest.raises(ValueError, match="confirm_delivery=True"):
        dramatiq_offload(broker, lambda: None)


def test_queued_then_run_once_by_a_dramatiq_worker(app: App) -> None:
    bodies = []
    for _ in range(3):
        body, headers = delivery()
        bodies.append(body)
        for _copy in range(2):  # Commet's retry of the same delivery
            response = app.webhooks.handle_sync(body, headers)
            assert (response.status, response.outcome) == (200, Outcome.QUEUED)
    assert queue_depth(app.url.replace("/%2F", "//"), app.queue)[0] == 6
    app.start_worker()
    wait_until(lambda: len(app.ran) == 3, 30, "three events handled")
    wait_until(lambda: queue_depth(app.url.replace("/%2F", "//"), app.queue)[0] == 0, 10, "drain")
    assert sorted(e.id for e in app.ran) == sorted(json.loads(b)["id"] for b in bodies)


@pytest.mark.anyio
async def test_broker_down_is_a_503_then_it_recovers(app: App, proxy: TcpProxy) -> None:
    assert (await app.webhooks.handle(*delivery())).status == 200
    proxy.stop()
    response = await app.webhooks.handle(*delivery())
    assert (response.status, response.outcome) == (503, Outcome.OFFLOAD_UNAVAILABLE)
    proxy.start()
    assert (await app.webhooks.handle(*delivery())).status == 200


def test_a_replay_right_after_a_peek_finds_every_letter_peeked(app: App) -> None:
    # A peek borrows the letters and gives them back; RabbitMQ puts them back a moment
    # later, and the peek returns only once they are ready again.
    for _ in range(2):  # forgeries: dead-lettered at once, and again after every replay
        app.offload.publish(
            OffloadedDelivery(b"{}", "0" * 64, None, "payment.failed", "2026-01-01T00:00:00Z")
        )
    app.start_worker()
    for _round in range(20):
        # wait_until's last call is a peek that saw both: the replay follows it at once
        wait_until(lambda: len(app.offload.peek_dead_letters()) == 2, 30, "two dead letters")
        assert app.offload.replay_dead_letters() == 2


def test_retries_then_dead_letter_then_replay(app: App) -> None:
    app.broken = True
    body, headers = delivery("payment.failed")
    assert app.webhooks.handle_sync(body, headers).outcome is Outcome.QUEUED
    forged = OffloadedDelivery(body, "0" * 64, None, "payment.failed", "2026-01-01T00:00:00Z")
    app.offload.publish(forged)
    app.start_worker()
    wait_until(lambda: len(app.offload.peek_dead_letters()) == 2, 30, "two dead letters")
    # Three attempts for the handler error (max_retries=2), one for the forgery.
    assert sum(isinstance(e, RuntimeError) for e, _ in app.errors) == 3
    dead = sorted(
        (e.record.reason, e.record.attempts)
        for e, _ in app.errors
        if isinstance(e, DeadLetteredError)
    )
    assert dead == [("handler_error", 3), ("invalid_signature", 1)]
    assert app.ran == []
    app.broken = False
    assert app.offload.replay_dead_letters() == 2
    wait_until(lambda: len(app.ran) == 1, 30, "the replayed event")
    assert app.ran[0].id == json.loads(body)["id"]
    # The forgery is back among the dead letters; the fixed event is not.
    wait_until(lambda: len(app.offload.peek_dead_letters()) == 1, 30, "the forgery back")
    [left] = app.offload.peek_dead_letters()
    assert left.delivery().signature == "0" * 64
