"""Four worker processes on one inbox, shuffled duplicates: exactly once, replay, order."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from inbox_helpers import InboxSpec, delivery_worker, read_effects, wait_for

from commet_webhooks import Webhooks
from commet_webhooks.inbox import Filter, InboxStore, Status, replay
from commet_webhooks.testing import sample_event, signed_request

pytestmark = pytest.mark.slow

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 4
COPIES = 2  # every worker gets every event twice: 8 deliveries of each


def _run_workers(
    spec: InboxSpec,
    secret: str,
    envelopes: list[dict[str, Any]],
    folder: Path,
    buggy: list[str],
    guarded: bool,
) -> None:
    deliveries = [signed_request(e, secret) for e in envelopes] * COPIES
    processes = [
        SPAWN.Process(
            target=delivery_worker,
            args=(spec, secret, deliveries, str(folder), index, buggy, guarded),
        )
        for index in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        wait_for(
            lambda: all(Path(folder, f"ready-{i}").exists() for i in range(WORKERS)),
            90,
            "workers ready",
        )
        Path(folder, "go").touch()
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    for index in range(WORKERS):
        statuses = Path(folder, f"result-{index}.txt").read_text().split()
        assert len(statuses) == len(deliveries)
        assert set(statuses) <= {"200", "409"}


def test_a_bug_across_four_processes_then_one_replay_each_effect_once(
    spec: InboxSpec, build: Any, tmp_path: Path, secret: str
) -> None:
    types = ["invoice.created", "payment.received", "subscription.activated"]
    envelopes = [sample_event(types[n % 3], id=f"evt_mp{n}") for n in range(24)]
    buggy = [f"evt_mp{n}" for n in range(0, 24, 3)]  # every invoice.created hits the bug

    _run_workers(spec, secret, envelopes, tmp_path, buggy, guarded=False)

    inbox: InboxStore = build(spec)
    effects = Counter(line.split(",")[2] for line in read_effects(tmp_path))
    assert effects == Counter({e["id"]: 1 for e in envelopes if e["id"] not in buggy})
    assert {r.key for r in inbox.list(Filter(status="failed"))} == set(buggy)
    assert inbox.counts() == {Status.DONE: 16, Status.FAILED: 8}

    # The fix, deployed: one replay brings every affected event to done.
    fixed_effects = tmp_path / "fixed.txt"

    def fixed(event: Any) -> None:
        with fixed_effects.open("a") as out:
            out.write(event.id + "\n")

    report = replay(Webhooks(secret, idempotency_store=inbox, on_payload=fixed), Filter())
    assert report.ok and len(report.planned) == 8
    assert Counter(fixed_effects.read_text().split()) == Counter({key: 1 for key in buggy})
    assert inbox.counts() == {Status.DONE: 24}


def test_ordering_guard_across_four_processes_never_applies_an_older_event_last(
    spec: InboxSpec, build: Any, tmp_path: Path, secret: str
) -> None:
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    envelopes = []
    for sub in range(5):
        for step in range(6):
            moment = base + timedelta(minutes=step, seconds=sub)
            envelopes.append(
                sample_event(
                    "subscription.updated",
                    id=f"evt_o{sub}_{step}",
                    timestamp=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    subscription_id=f"sub_{sub}",
                )
            )

    _run_workers(spec, secret, envelopes, tmp_path, [], guarded=True)

    inbox: InboxStore = build(spec)
    applied = [line.split(",") for line in read_effects(tmp_path)]
    ids = Counter(event_id for _, _, event_id in applied)
    assert all(n == 1 for n in ids.values())  # no effect twice
    records = {r.key: r for r in inbox.list()}
    assert len(records) == 30
    assert {r.status for r in records.values()} <= {Status.DONE, Status.SKIPPED}
    assert {k for k, r in records.items() if r.status is Status.DONE} == set(ids)
    for sub in range(5):
        newest = f"evt_o{sub}_5"
        assert records[newest].status is Status.DONE  # the newest always applies
        for step in range(5):
            record = records[f"evt_o{sub}_{step}"]
            if record.status is Status.SKIPPED:
                assert record.event_time is not None
                assert record.event_time < records[newest].event_time  # type: ignore[operator]
    # A skipped event is finished: Commet's redelivery is a duplicate, not a rerun.
    # (Each worker's shuffle is seeded: some older events always come after newer ones.)
    skipped = [k for k, r in records.items() if r.status is Status.SKIPPED]
    assert skipped
    body = inbox.get(skipped[0]).body  # type: ignore[union-attr]
    assert body is not None
    ran: list[Any] = []
    webhooks = Webhooks(secret, idempotency_store=inbox, on_payload=ran.append)
    again = webhooks.handle_sync(*signed_request(body, secret))
    assert again.outcome.value == "duplicate" and ran == []
