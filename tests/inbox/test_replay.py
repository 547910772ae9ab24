"""Replay: a handler bug fixed, failed events replayed to success, each effect once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from inbox_helpers import InboxSpec, old_decoder

from commet_webhooks import Webhooks
from commet_webhooks.dispatch import SIGNATURE_HEADER, OffloadedDelivery
from commet_webhooks.inbox import Filter, InboxStore, Status, areplay, replay
from commet_webhooks.testing import sample_event, signed_request


class Ledger:
    """A handler with a bug that can be fixed; counts each effect."""

    def __init__(self) -> None:
        self.broken = True
        self.effects: Counter[str] = Counter()

    def __call__(self, event: Any) -> None:
        if self.broken and event.event == "payment.failed":
            raise KeyError("invoiceId")
        self.effects[event.id] += 1


def _deliver(webhooks: Webhooks, secret: str, events: list[dict[str, Any]]) -> None:
    for envelope in events:
        webhooks.handle_sync(*signed_request(envelope, secret))


def test_a_fixed_bug_replays_every_failed_event_to_done_exactly_once(
    inbox: InboxStore, secret: str
) -> None:
    ledger = Ledger()
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger)
    events = [
        sample_event("payment.failed" if n % 2 else "invoice.created", id=f"evt_r{n}")
        for n in range(10)
    ]
    _deliver(webhooks, secret, events)
    _deliver(webhooks, secret, events[:4])  # Commet retries a few: still failing
    failed = {r.key for r in inbox.list(Filter(status="failed"))}
    assert failed == {f"evt_r{n}" for n in range(1, 10, 2)}

    plan = replay(webhooks, Filter(status="failed"), dry_run=True)
    assert plan.dry_run and {r.key for r in plan.planned} == failed
    assert not ledger.effects.keys() & failed  # a dry run runs nothing

    ledger.broken = False  # the fix is deployed
    report = replay(webhooks, Filter(status="failed"))

    assert report.ok and {r.key for r in report.results} == failed
    assert all(r.outcome is not None and r.outcome.value == "ok" for r in report.results)
    assert inbox.counts() == {Status.DONE: 10}
    assert ledger.effects == Counter({f"evt_r{n}": 1 for n in range(10)})
    assert inbox.get("evt_r1").attempts == 3  # type: ignore[union-attr]  # two live, one replay

    # Replaying again, by filter or id, and Commet's late retries: nothing runs twice.
    again = replay(webhooks, Filter(event_type="payment.failed"))
    assert not again.planned and {r.action for r in again.results} == {"skip: already handled"}
    assert not replay(webhooks, "evt_r1").planned
    _deliver(webhooks, secret, events)
    assert ledger.effects == Counter({f"evt_r{n}": 1 for n in range(10)})


def test_force_runs_a_done_event_again_and_records_the_attempt(
    inbox: InboxStore, secret: str
) -> None:
    ledger = Ledger()
    ledger.broken = False
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger)
    _deliver(webhooks, secret, [sample_event("invoice.created", id="evt_force")])
    report = replay(webhooks, ["evt_force", "evt_missing"], force=True)
    assert [r.action for r in report.results] == ["run", "missing"]
    assert ledger.effects["evt_force"] == 2
    record = inbox.get("evt_force")
    assert record is not None and record.status is Status.DONE and record.attempts == 2


def test_replay_verifies_the_stored_body_again(
    spec: InboxSpec, inbox: InboxStore, secret: str
) -> None:
    ledger = Ledger()
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger)
    _deliver(webhooks, secret, [sample_event("payment.failed", id="evt_tamper")])
    ledger.broken = False
    _tamper(spec, inbox, "evt_tamper")

    report = replay(webhooks, "evt_tamper")

    assert report.results[0].outcome is not None
    assert report.results[0].outcome.value == "invalid_signature"
    assert ledger.effects == Counter()
    assert inbox.get("evt_tamper").status is Status.FAILED  # type: ignore[union-attr]
    # Signed with a secret this receiver no longer accepts: the same refusal.
    other = Webhooks("whsec_another_secret_0001", idempotency_store=inbox, on_payload=ledger)
    assert replay(other, "evt_tamper").results[0].outcome.value == "invalid_signature"  # type: ignore[union-attr]


def _tamper(spec: InboxSpec, inbox: InboxStore, key: str) -> None:
    record = inbox.get(key)
    assert record is not None and record.body is not None
    forged = record.body.replace(b"payment.failed", b"payment.failed ")
    if spec.kind == "sqlite":
        with sqlite3.connect(spec.target) as conn:
            conn.execute(f'UPDATE "{inbox.table}" SET body = ? WHERE key = ?', (forged, key))
    else:
        import psycopg

        with psycopg.connect(spec.target, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("UPDATE {}.{} SET body = %s WHERE key = %s").format(
                    psycopg.sql.Identifier(spec.options["schema"]),
                    psycopg.sql.Identifier(inbox.table),
                ),
                (forged, key),
            )


def test_an_untyped_event_becomes_typed_after_an_upgrade(
    inbox: InboxStore, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed: list[Any] = []
    webhooks = Webhooks(secret, idempotency_store=inbox, on_invoice_created=typed.append)
    envelope = sample_event("invoice.created", id="evt_upgrade")
    with monkeypatch.context() as old_library:
        old_library.setattr("commet_webhooks._admission.decode_event", old_decoder)
        webhooks.handle_sync(*signed_request(envelope, secret))
    assert typed == [] and inbox.get("evt_upgrade").untyped  # type: ignore[union-attr]

    report = replay(webhooks, Filter(status=["failed", "dead"]))  # the upgraded library

    assert report.ok and len(typed) == 1 and typed[0].id == "evt_upgrade"
    assert type(typed[0]).__name__ != "UnknownEvent"
    record = inbox.get("evt_upgrade")
    assert record is not None and record.status is Status.DONE and not record.untyped


def test_a_dead_letter_from_a_worker_is_replayable(inbox: InboxStore, secret: str) -> None:
    ledger = Ledger()
    ledger.broken = False
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger)
    body, headers = signed_request(sample_event("payment.received", id="evt_dlq"), secret)
    inbox.record(
        OffloadedDelivery(body, headers[SIGNATURE_HEADER], "evt_dlq", "payment.received", ""),
        status="dead",
        error="TimeoutError: gave up after 5 tries",
    )
    assert [r.key for r in replay(webhooks, Filter(status="dead"), dry_run=True).planned] == [
        "evt_dlq"
    ]
    assert replay(webhooks, Filter(status="dead")).ok
    assert ledger.effects == Counter({"evt_dlq": 1})


def test_replay_ignores_the_tolerance_meant_for_live_deliveries(
    inbox: InboxStore, secret: str
) -> None:
    ledger = Ledger()
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger, tolerance=300)
    old = sample_event("payment.failed", id="evt_old", timestamp="2026-01-02T03:04:05.000Z")
    webhooks.tolerance = None  # it arrived in time, back then
    _deliver(webhooks, secret, [old])
    webhooks.tolerance = 300
    ledger.broken = False
    assert replay(webhooks, "evt_old").ok and ledger.effects["evt_old"] == 1
    assert webhooks.tolerance == 300  # the live receiver keeps its check


def test_filters_by_type_and_time(inbox: InboxStore, secret: str) -> None:
    ledger = Ledger()
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ledger)
    ledger.broken = True

    def failing_all(event: Any) -> None:
        raise RuntimeError("down")

    broken = Webhooks(secret, idempotency_store=inbox, on_payload=failing_all)
    _deliver(broken, secret, [sample_event("invoice.created", id="evt_t0")])
    time.sleep(0.02)
    cut = inbox.get("evt_t0").received_at  # type: ignore[union-attr]
    time.sleep(0.02)
    _deliver(broken, secret, [sample_event("invoice.created", id="evt_t1")])
    _deliver(broken, secret, [sample_event("payment.received", id="evt_t2")])
    ledger.broken = False
    from datetime import timedelta

    report = replay(
        webhooks, Filter(event_type="invoice.created", since=cut + timedelta(milliseconds=1))
    )
    assert [r.key for r in report.results] == ["evt_t1"] and report.ok
    assert inbox.counts() == {Status.FAILED: 2, Status.DONE: 1}


def test_replay_needs_webhooks_that_record_into_the_inbox(
    inbox: InboxStore, make_spec: Callable[[str], InboxSpec], secret: str
) -> None:
    with pytest.raises(TypeError, match="inbox"):
        replay(Webhooks(secret), "evt_x")
    other = make_spec("sqlite").build()
    try:
        with pytest.raises(ValueError, match="not the one"):
            replay(Webhooks(secret, idempotency_store=inbox), "evt_x", inbox=other)
    finally:
        other.close()


def test_async_replay(inbox: InboxStore, secret: str) -> None:
    seen: list[str] = []

    async def handler(event: Any) -> None:
        if not seen and event.id == "evt_a":
            seen.append("failed once")
            raise RuntimeError("first time")
        seen.append(event.id)

    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=handler)
    body, headers = signed_request(sample_event("invoice.created", id="evt_a"), secret)

    async def run() -> Any:
        try:
            await webhooks.handle(body, headers)
            return await areplay(webhooks, Filter(status="failed"))
        finally:
            await inbox.aclose()

    report = asyncio.run(run())
    assert report.ok and seen == ["failed once", "evt_a"]


def test_racing_replays_of_one_event_run_it_once(inbox: InboxStore, secret: str) -> None:
    import threading

    runs: list[str] = []
    started = threading.Event()

    def slow(event: Any) -> None:
        if event.id == "evt_race" and not started.is_set():
            started.set()
            raise RuntimeError("first delivery fails")
        runs.append(event.id)
        time.sleep(0.3)

    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=slow)
    _deliver(webhooks, secret, [sample_event("invoice.created", id="evt_race")])
    reports: list[Any] = []
    threads = [
        threading.Thread(target=lambda: reports.append(replay(webhooks, "evt_race")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert runs == ["evt_race"]
    outcomes = sorted(r.results[0].outcome.value if r.results[0].outcome else r.results[0].action
                      for r in reports)  # fmt: skip
    assert outcomes.count("ok") == 1 and len(outcomes) == 4
    assert inbox.get("evt_race").status is Status.DONE  # type: ignore[union-attr]


def test_a_long_handler_keeps_its_lease_while_a_retry_arrives(
    spec: InboxSpec, build: Callable[..., InboxStore], secret: str
) -> None:
    import threading

    inbox = build(spec, lease_seconds=0.6)
    runs: list[str] = []

    def long_running(event: Any) -> None:
        runs.append(event.id)
        time.sleep(1.2)  # twice the lease: renewed every 0.2 s meanwhile

    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=long_running)
    body, headers = signed_request(sample_event("invoice.created", id="evt_long"), secret)
    first = threading.Thread(target=webhooks.handle_sync, args=(body, headers))
    first.start()
    time.sleep(0.9)  # past the first lease's end
    assert webhooks.handle_sync(body, headers).outcome.value == "busy"
    first.join(timeout=30)
    record = inbox.get("evt_long")
    assert runs == ["evt_long"] and record is not None
    assert record.status is Status.DONE and record.attempts == 1
