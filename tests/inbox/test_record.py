"""The inbox records what the pipeline claims: every field, every status, retention."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from inbox_helpers import InboxSpec, old_decoder

from commet_webhooks import Webhooks
from commet_webhooks.dispatch import SIGNATURE_HEADER, OffloadedDelivery
from commet_webhooks.errors import StoreUnavailableError
from commet_webhooks.inbox import EventRecord, Filter, InboxStore, Status
from commet_webhooks.testing import sample_event, signed_request
from support.net import free_port


def _failing(event: Any) -> None:
    raise ValueError("card declined")


def test_a_handled_event_is_recorded_with_its_envelope_and_body(
    inbox: InboxStore, secret: str
) -> None:
    seen: list[str] = []
    webhooks = Webhooks(
        secret, idempotency_store=inbox, on_payment_failed=lambda e: seen.append(e.id)
    )
    envelope = sample_event("payment.failed", id="evt_rec_1", mode="live")
    body, headers = signed_request(envelope, secret)
    before = datetime.now(timezone.utc)

    response = webhooks.handle_sync(body, headers)

    assert response.status == 200 and seen == ["evt_rec_1"]
    record = inbox.get("evt_rec_1")
    assert isinstance(record, EventRecord)
    assert record.body == body  # the bytes as signed
    assert record.signature == headers[SIGNATURE_HEADER]
    assert record.event_type == "payment.failed"
    assert record.event_time == datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00"))
    assert record.organization_id == envelope["organizationId"]
    assert (record.mode, record.api_version) == ("live", envelope["apiVersion"])
    assert record.status is Status.DONE and record.attempts == 1 and record.last_error is None
    assert before - timedelta(seconds=5) <= record.received_at <= datetime.now(timezone.utc)
    assert record.handled_at is not None and record.handled_at >= record.received_at
    assert not record.untyped and record.has_body

    again = webhooks.handle_sync(body, headers)
    assert again.outcome.value == "duplicate" and seen == ["evt_rec_1"]
    assert inbox.get("evt_rec_1").attempts == 1  # type: ignore[union-attr]


def test_a_failure_is_recorded_without_secrets_and_retried_by_commet(
    inbox: InboxStore, secret: str
) -> None:
    def leaky(event: Any) -> None:
        raise ValueError("card declined for key ck_" + "live_abcdef123, whsec_" + "topsecret")

    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=leaky)
    body, headers = signed_request(sample_event("payment.failed", id="evt_fail"), secret)

    assert webhooks.handle_sync(body, headers).outcome.value == "handler_error"
    record = inbox.get("evt_fail")
    assert record is not None and record.status is Status.FAILED and record.attempts == 1
    assert record.last_error is not None and record.last_error.startswith(
        "ValueError: card declined"
    )
    assert "abcdef123" not in record.last_error and "topsecret" not in record.last_error

    # Commet's retry takes the failed row again: a second attempt on the same row.
    assert webhooks.handle_sync(body, headers).outcome.value == "handler_error"
    assert inbox.get("evt_fail").attempts == 2  # type: ignore[union-attr]
    assert len(inbox.list()) == 1


def test_dead_after_turns_repeated_failures_dead(
    spec: InboxSpec, build: Callable[..., InboxStore], secret: str
) -> None:
    inbox = build(spec, dead_after=2)
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=_failing)
    body, headers = signed_request(sample_event("payment.failed", id="evt_dead"), secret)
    webhooks.handle_sync(body, headers)
    assert inbox.get("evt_dead").status is Status.FAILED  # type: ignore[union-attr]
    webhooks.handle_sync(body, headers)
    assert inbox.get("evt_dead").status is Status.DEAD  # type: ignore[union-attr]


def test_an_event_accepted_untyped_is_recorded_failed_with_the_drift(
    inbox: InboxStore, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("commet_webhooks._admission.decode_event", old_decoder)
    raw: list[Any] = []
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=raw.append)
    body, headers = signed_request(sample_event("invoice.created", id="evt_drift"), secret)

    response = webhooks.handle_sync(body, headers)

    assert response.status == 200 and response.outcome.value == "accepted_raw" and len(raw) == 1
    record = inbox.get("evt_drift")
    assert record is not None and record.untyped and record.status is Status.FAILED
    assert record.last_error is not None and "EventSchemaError" in record.last_error
    assert record.replayable


def test_async_handle_records_the_same_way(inbox: InboxStore, secret: str) -> None:
    async def handler(event: Any) -> None:
        await asyncio.sleep(0)

    webhooks = Webhooks(secret, idempotency_store=inbox, on_invoice_created=handler)
    body, headers = signed_request(sample_event("invoice.created", id="evt_async"), secret)

    async def run() -> int:
        try:
            return (await webhooks.handle(body, headers)).status
        finally:
            await inbox.aclose()

    assert asyncio.run(run()) == 200
    record = inbox.get("evt_async")
    assert record is not None and record.status is Status.DONE and record.body == body


def test_a_live_lease_answers_busy_and_an_expired_one_is_taken_over(
    spec: InboxSpec, build: Callable[..., InboxStore], secret: str
) -> None:
    inbox = build(spec, lease_seconds=0.5)
    assert inbox.claim("evt_lease", "worker-a").value == "claimed"
    assert inbox.claim("evt_lease", "worker-b").value == "busy"
    assert inbox.get("evt_lease").status is Status.PROCESSING  # type: ignore[union-attr]
    assert inbox.renew("evt_lease", "worker-a") and not inbox.renew("evt_lease", "worker-b")
    time.sleep(0.6)
    assert inbox.claim("evt_lease", "worker-b").value == "claimed"
    assert not inbox.complete("evt_lease", "worker-a")  # no longer the owner
    assert inbox.complete("evt_lease", "worker-b")
    assert inbox.claim("evt_lease", "worker-c").value == "done"
    # A plain claim stores no body: listed, but not replayable.
    record = inbox.get("evt_lease")
    assert record is not None and not record.has_body and not record.replayable


def test_a_released_claim_goes_back_to_received(inbox: InboxStore) -> None:
    assert inbox.claim("evt_rel", "a").value == "claimed"
    assert not inbox.release("evt_rel", "b")
    assert inbox.release("evt_rel", "a")
    assert inbox.get("evt_rel").status is Status.RECEIVED  # type: ignore[union-attr]
    assert inbox.claim("evt_rel", "b").value == "claimed"


def test_list_filters_by_status_type_time_and_id(inbox: InboxStore, secret: str) -> None:
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=_failing)
    for n, event_type in enumerate(["payment.failed", "invoice.created", "payment.failed"]):
        body, headers = signed_request(sample_event(event_type, id=f"evt_l{n}"), secret)
        webhooks.handle_sync(body, headers)
        time.sleep(0.01)
    middle = inbox.get("evt_l1").received_at  # type: ignore[union-attr]

    assert [r.key for r in inbox.list()] == ["evt_l0", "evt_l1", "evt_l2"]
    assert [r.key for r in inbox.list(Filter(status="failed"))] == ["evt_l0", "evt_l2"]
    assert [r.key for r in inbox.list(Filter(status="done"))] == ["evt_l1"]
    assert [r.key for r in inbox.list(Filter(event_type="invoice.created"))] == ["evt_l1"]
    assert [r.key for r in inbox.list(Filter(since=middle))] == ["evt_l1", "evt_l2"]
    assert [r.key for r in inbox.list(Filter(until=middle))] == ["evt_l0"]
    assert [r.key for r in inbox.list(Filter(keys=("evt_l2", "nope")))] == ["evt_l2"]
    assert [r.key for r in inbox.list(Filter(newest_first=True, limit=2))] == ["evt_l2", "evt_l1"]
    assert all(r.body is None for r in inbox.list())  # listings leave bodies out
    assert inbox.counts() == {Status.FAILED: 2, Status.DONE: 1}
    assert inbox.counts(Filter(event_type="payment.failed")) == {Status.FAILED: 2}


def test_prune_deletes_old_events_but_never_a_live_lease(
    spec: InboxSpec, build: Callable[..., InboxStore], secret: str
) -> None:
    inbox = build(spec, keep=0.3)
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payment_failed=_failing)
    for n in range(3):
        body, headers = signed_request(sample_event("payment.failed", id=f"evt_p{n}"), secret)
        webhooks.handle_sync(body, headers)
    assert inbox.claim("evt_live", "holder").value == "claimed"
    time.sleep(0.4)
    body, headers = signed_request(sample_event("payment.failed", id="evt_new"), secret)
    webhooks.handle_sync(body, headers)

    assert inbox.prune_plan() == {Status.FAILED: 3}
    assert inbox.prune(status=["done"]) == 0
    assert inbox.prune() == 3
    assert sorted(r.key for r in inbox.list()) == ["evt_live", "evt_new"]
    assert inbox.prune(older_than=timedelta(days=1)) == 0


def test_claims_purge_expired_events_on_their_own(
    spec: InboxSpec, build: Callable[..., InboxStore], secret: str
) -> None:
    inbox = build(spec, keep=0.2, purge_interval=0.1)
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=lambda e: None)
    body, headers = signed_request(sample_event("invoice.created", id="evt_old"), secret)
    webhooks.handle_sync(body, headers)
    time.sleep(0.3)
    body, headers = signed_request(sample_event("invoice.created", id="evt_young"), secret)
    webhooks.handle_sync(body, headers)
    assert [r.key for r in inbox.list()] == ["evt_young"]


def test_a_dead_letter_is_recorded_once(inbox: InboxStore, secret: str) -> None:
    body, headers = signed_request(sample_event("payment.received", id="evt_dl"), secret)
    delivery = OffloadedDelivery(body, headers[SIGNATURE_HEADER], "evt_dl", "payment.received", "")
    assert inbox.record(delivery, status="dead", error="TimeoutError: worker gave up (whsec_x1)")
    assert not inbox.record(delivery, status="dead", error="again")
    record = inbox.get("evt_dl")
    assert record is not None and record.status is Status.DEAD and record.body == body
    assert record.event_time is not None and record.organization_id
    assert record.last_error == "TimeoutError: worker gave up (whsec_***)"
    with pytest.raises(ValueError):
        inbox.record(delivery, status="done")


def test_sqlite_locked_database_answers_503(
    make_spec: Callable[[str], InboxSpec], build: Callable[..., InboxStore], secret: str
) -> None:
    spec = make_spec("sqlite")
    inbox = build(spec, busy_timeout=0.2)
    inbox.list()  # creates the file and table
    blocker = sqlite3.connect(spec.target, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        ran: list[Any] = []
        webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ran.append)
        body, headers = signed_request(sample_event("invoice.created"), secret)
        response = webhooks.handle_sync(body, headers)
        assert response.status == 503 and response.outcome.value == "store_unavailable"
        assert ran == []
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert webhooks.handle_sync(body, headers).status == 200


@pytest.mark.postgres
def test_postgres_unreachable_answers_503_without_the_password(
    make_spec: Callable[[str], InboxSpec], build: Callable[..., InboxStore], secret: str
) -> None:
    from support.services import postgres_url

    spec = make_spec("postgres").at(postgres_url(port=free_port(), password="pw-hunter2"))
    inbox = build(spec, timeout=1.0)
    ran: list[Any] = []
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ran.append)
    body, headers = signed_request(sample_event("invoice.created"), secret)
    started = time.monotonic()
    response = webhooks.handle_sync(body, headers)
    assert response.status == 503 and ran == []
    assert time.monotonic() - started < 10
    with pytest.raises(StoreUnavailableError) as caught:
        inbox.list()
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(inbox)


def test_the_hot_path_writes_once_to_claim_and_once_to_complete(
    make_spec: Callable[[str], InboxSpec], build: Callable[..., InboxStore], secret: str
) -> None:
    """Recording the body rides on the claim: the same two writes as the plain store."""
    from commet_webhooks.stores.sqlite import SQLiteStore

    statements: dict[str, list[str]] = {"inbox": [], "plain": []}
    spec = make_spec("sqlite")
    inbox = build(spec)
    plain = SQLiteStore(spec.target + ".keys")
    try:
        for name, store in (("inbox", inbox), ("plain", plain)):
            webhooks = Webhooks(secret, idempotency_store=store, on_payload=lambda e: None)
            webhooks.handle_sync(*signed_request(sample_event("invoice.created"), secret))
            store._conn.set_trace_callback(statements[name].append)  # type: ignore[attr-defined]
            webhooks.handle_sync(*signed_request(sample_event("invoice.created"), secret))
            store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
    finally:
        plain.close()
    writes = {
        name: [s.split()[0] for s in found if s.split()[0] in ("INSERT", "UPDATE", "DELETE")]
        for name, found in statements.items()
    }
    assert writes["inbox"] == writes["plain"] == ["INSERT", "UPDATE"]


def test_an_id_longer_than_an_index_entry_is_found_again(inbox: InboxStore, secret: str) -> None:
    long_id = "evt_" + "x" * 600
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=lambda e: None)
    body, headers = signed_request(sample_event("invoice.created", id=long_id), secret)
    assert webhooks.handle_sync(body, headers).status == 200
    record = inbox.get(long_id)
    assert record is not None and record.status is Status.DONE and record.body == body
    assert webhooks.handle_sync(body, headers).outcome.value == "duplicate"
