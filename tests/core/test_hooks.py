"""The core's hooks for task queues (``offload=``) and instrumentation (``observer=``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from commet_webhooks import (
    DeliveryRecord,
    MemoryStore,
    Observer,
    OffloadedDelivery,
    Outcome,
    PaymentFailed,
    WebhookEvent,
    WebhookResponse,
    Webhooks,
)
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_hooks_tests"
pytestmark = pytest.mark.anyio


class ListQueue:
    """An in-process queue: accepts deliveries unless told the broker is down."""

    def __init__(self) -> None:
        self.items: list[OffloadedDelivery] = []
        self.down = False

    def publish(self, delivery: OffloadedDelivery) -> None:
        if self.down:
            raise ConnectionError("broker refused the connection")
        # Through the wire form, as a real broker would carry it.
        self.items.append(OffloadedDelivery.from_message(json.loads(json.dumps(delivery.to_message()))))

    async def apublish(self, delivery: OffloadedDelivery) -> None:
        self.publish(delivery)


def request(event_type: str = "payment.failed") -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type), SECRET)


async def test_offload_answers_queued_and_a_worker_runs_the_handlers_once() -> None:
    queue = ListQueue()
    ran: list[WebhookEvent] = []
    receiver = Webhooks(SECRET, offload=queue, on_payment_failed=ran.append)
    body, headers = request()
    response = await receiver.handle(body, headers)
    assert response.status == 200 and response.outcome is Outcome.QUEUED
    assert json.loads(response.body) == {"received": True, "queued": True}
    assert ran == [] and len(queue.items) == 1
    delivery = queue.items[0]
    assert delivery.body == body  # the raw bytes as signed, never re-encoded
    assert delivery.event_type == "payment.failed" and delivery.event_id == json.loads(body)["id"]

    worker = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=ran.append)
    assert (await worker.ahandle_offloaded(delivery)).outcome is Outcome.OK
    assert (await asyncio.to_thread(worker.handle_offloaded, delivery)).outcome is Outcome.DUPLICATE
    assert len(ran) == 1 and isinstance(ran[0], PaymentFailed)


async def test_a_message_forged_into_the_broker_runs_nothing() -> None:
    ran: list[WebhookEvent] = []
    worker = Webhooks(SECRET, on_payload=ran.append)
    forged = OffloadedDelivery(
        body=json.dumps(sample_event("payment.failed")).encode(),
        signature="0" * 64,
        event_id=None,
        event_type="payment.failed",
        received_at="2026-01-01T00:00:00.000Z",
    )
    assert (await worker.ahandle_offloaded(forged)).outcome is Outcome.INVALID_SIGNATURE
    assert ran == []
    with pytest.raises(ValueError, match="not an offloaded Commet delivery"):
        OffloadedDelivery.from_message({"body": "x"})


async def test_broker_down_is_503_and_reported_sync_and_async() -> None:
    queue = ListQueue()
    queue.down = True
    errors: list[BaseException] = []
    receiver = Webhooks(SECRET, offload=queue, on_error=lambda exc, subject: errors.append(exc))
    response = await receiver.handle(*request())
    assert response.status == 503 and response.outcome is Outcome.OFFLOAD_UNAVAILABLE
    sync = await asyncio.to_thread(receiver.handle_sync, *request())
    assert sync.status == 503 and "retry-after" in sync.headers
    assert [type(e) for e in errors] == [ConnectionError, ConnectionError]
    with pytest.raises(TypeError, match="offload must have"):
        Webhooks(SECRET, offload=object())  # type: ignore[arg-type]


class Recording(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def delivery_started(self, headers: Mapping[str, str] | Any) -> Any:
        self.calls.append(("started", None))
        return "token-1"

    def admitted(self, token: Any, admission: Any, seconds: float) -> None:
        self.calls.append(("admitted", (token, getattr(admission, "secret_index", None))))

    @contextlib.contextmanager
    def handler(self, token: Any, name: str, event_type: str) -> Iterator[None]:
        self.calls.append(("handler", (token, name.rsplit(".", 1)[-1], event_type)))
        yield

    @contextlib.contextmanager
    def store_call(self, token: Any, operation: str) -> Iterator[None]:
        self.calls.append(("store", (token, operation)))
        yield

    def delivery_finished(self, token: Any, response: WebhookResponse, seconds: float) -> None:
        self.calls.append(("finished", (token, response.outcome.value)))


async def test_observer_sees_each_step_in_both_drivers() -> None:
    def notify(event: PaymentFailed) -> None: ...

    for drive in ("async", "sync"):
        observer = Recording()
        webhooks = Webhooks(
            ["whsec_new_secret", SECRET],
            idempotency_store=MemoryStore(),
            on_payment_failed=notify,
            observer=observer,
        )
        body, headers = request()
        if drive == "async":
            await webhooks.handle(body, headers)
        else:
            await asyncio.to_thread(webhooks.handle_sync, body, headers)
        assert observer.calls == [
            ("started", None),
            ("admitted", ("token-1", 1)),  # the second (old) secret verified it
            ("store", ("token-1", "claim")),
            ("handler", ("token-1", "notify", "payment.failed")),
            ("store", ("token-1", "complete")),
            ("finished", ("token-1", "ok")),
        ], drive


async def test_a_raising_observer_never_changes_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Observer):
        def delivery_started(self, headers: Any) -> Any:
            raise RuntimeError("exporter is down")

        def delivery_finished(self, token: Any, response: WebhookResponse, seconds: float) -> None:
            raise RuntimeError("exporter is down")

    webhooks = Webhooks(SECRET, observer=Broken())
    with caplog.at_level(logging.ERROR, logger="commet_webhooks"):
        assert (await webhooks.handle(*request())).status == 200
    assert "observer hook" in caplog.text


async def test_a_delivery_past_commets_timeout_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import commet_webhooks.dispatch as dispatch

    monkeypatch.setattr(dispatch, "COMMET_TIMEOUT_SECONDS", 0.05)

    async def slow(event: PaymentFailed) -> None:
        await asyncio.sleep(0.1)

    webhooks = Webhooks(SECRET, on_payment_failed=slow)
    with caplog.at_level(logging.WARNING, logger="commet_webhooks"):
        assert (await webhooks.handle(*request())).status == 200
    assert "past Commet's" in caplog.text and "payment.failed" in caplog.text
    assert "offload" in caplog.text


class Recorded(Observer):
    """An observer whose token is a DeliveryRecord: it reads what the core wrote."""

    def __init__(self, *, scoped: bool = False) -> None:
        self.scoped = scoped
        self.calls: list[str] = []
        self.finished: list[DeliveryRecord] = []

    def delivery_started(self, headers: Mapping[str, str] | Any) -> DeliveryRecord:
        record = DeliveryRecord()
        record.scoped = self.scoped
        return record

    def admitted(self, token: Any, admission: Any, seconds: float) -> None:
        self.calls.append("admitted")

    def handler(self, token: Any, name: str, event_type: str) -> contextlib.AbstractContextManager[None]:
        self.calls.append("handler")
        return contextlib.nullcontext()

    def store_call(self, token: Any, operation: str) -> contextlib.AbstractContextManager[None]:
        self.calls.append("store")
        return contextlib.nullcontext()

    def delivery_finished(self, token: Any, response: WebhookResponse, seconds: float) -> None:
        self.finished.append(token)


@pytest.mark.parametrize("drive", ["async", "sync"])
@pytest.mark.parametrize("handler_kind", ["def", "async def"])
async def test_a_delivery_record_is_written_by_the_core_instead_of_hooks(
    drive: str, handler_kind: str
) -> None:
    def notify(event: PaymentFailed) -> None: ...

    async def anotify(event: PaymentFailed) -> None: ...

    def broken(event: PaymentFailed) -> None:
        raise RuntimeError("handler bug")

    observer = Recorded()
    webhooks = Webhooks(["whsec_new_secret", SECRET], idempotency_store=MemoryStore(), observer=observer)
    webhooks.on("payment.failed")(notify if handler_kind == "def" else anotify)
    webhooks.on("payment.failed")(broken)
    body, headers = request()
    if drive == "async":
        response = await webhooks.handle(body, headers)
    else:
        response = await asyncio.to_thread(webhooks.handle_sync, body, headers)
    assert response.status == 200 and response.outcome is Outcome.HANDLER_ERROR
    assert observer.calls == []  # no hook between delivery_started and delivery_finished
    (record,) = observer.finished
    assert record.admission is not None and record.admission.secret_index == 1
    assert record.admission_seconds is not None and 0 < record.admission_seconds < 5
    steps = [(kind, name.rsplit(".", 1)[-1], raised) for kind, name, _, raised in record]
    handlers = sorted(step for step in steps if step[0] == "handler")
    ran = ("handler", "anotify" if handler_kind == "async def" else "notify", False)
    assert handlers == sorted([("handler", "broken", True), ran])
    # The claim first; a failed handler releases it, so a redelivery runs them again.
    assert steps[0] == ("store", "claim", False)
    assert steps[-1] == ("store", "release", False)
    assert len(steps) == 4
    assert all(seconds >= 0 for _, _, seconds, _ in record)


@pytest.mark.parametrize("drive", ["async", "sync"])
async def test_a_scoped_delivery_record_gets_every_hook(drive: str) -> None:
    def notify(event: PaymentFailed) -> None: ...

    observer = Recorded(scoped=True)
    webhooks = Webhooks(
        SECRET, idempotency_store=MemoryStore(), on_payment_failed=notify, observer=observer
    )
    body, headers = request()
    if drive == "async":
        await webhooks.handle(body, headers)
    else:
        await asyncio.to_thread(webhooks.handle_sync, body, headers)
    assert observer.calls == ["admitted", "store", "handler", "store"]
    (record,) = observer.finished
    assert list(record) == [] and record.admission is None  # the hooks had it, not the record


async def test_a_delivery_cancelled_mid_handler_is_reported_as_cancelled() -> None:
    """No answer goes out, and Commet counts the attempt as failed: the observer must
    hear of it (it is what a too-slow handler looks like behind a server that cancels)."""
    started = asyncio.Event()

    async def hangs(event: PaymentFailed) -> None:
        started.set()
        await asyncio.Event().wait()

    observer = Recording()
    webhooks = Webhooks(
        SECRET, idempotency_store=MemoryStore(), on_payment_failed=hangs, observer=observer
    )
    body, headers = request()
    task = asyncio.ensure_future(webhooks.handle(body, headers))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert observer.calls[-1] == ("finished", ("token-1", "cancelled"))
    # The claim was released: a redelivery runs the handler.
    retried = Webhooks(SECRET, idempotency_store=webhooks.idempotency_store)
    assert (await retried.handle(body, headers)).outcome is Outcome.OK
