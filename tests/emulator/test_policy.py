"""The platform's delivery policy: the pure rule, and the rule over real HTTP.

8 attempts (the first, then 1 min, 5 min, 15 min, 30 min, 1 h, 1 h, 1 h), a 10 s
timeout, an endpoint disabled after three events in a row failed, nothing replayed
to it afterwards, and manual redeliveries that never schedule retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from commet_webhooks.emulator import (
    AUTO_DISABLE_AFTER,
    DEFAULT_RETRY_SCHEDULE,
    DELIVERY_TIMEOUT,
    DeliveryPolicy,
)
from commet_webhooks.emulator.policy import DeliveryState, next_state
from emulator.emulator_helpers import Emulator, Receiver, wait_until

HOUR = 3600.0


def test_the_default_is_the_platform_policy() -> None:
    policy = DeliveryPolicy()
    assert DEFAULT_RETRY_SCHEDULE == (60, 300, 900, 1800, HOUR, HOUR, HOUR)
    assert policy.max_attempts == 8
    assert DELIVERY_TIMEOUT == policy.timeout == 10.0
    assert AUTO_DISABLE_AFTER == policy.auto_disable_after == 3


def test_time_scale_divides_every_delay_not_the_timeout() -> None:
    policy = DeliveryPolicy.build(time_scale=60)
    assert [policy.retry_delay(n) for n in range(7)] == [1, 5, 15, 30, 60, 60, 60]
    assert policy.timeout == 10.0


@pytest.mark.parametrize(
    "options",
    [
        {"time_scale": 0},
        {"time_scale": float("inf")},
        {"retry_schedule": [-1]},
        {"timeout": 0},
        {"auto_disable_after": 0},
    ],
)
def test_unusable_policies_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeliveryPolicy.build(**options)  # type: ignore[arg-type]


def test_scheduled_failures_retry_until_the_eighth_attempt() -> None:
    policy = DeliveryPolicy()
    made = 0
    for delay in DEFAULT_RETRY_SCHEDULE:
        after = next_state(policy, DeliveryState("pending", made, False), ok=False, manual=False)
        made += 1
        assert (after.status, after.auto_attempts, after.retry_in) == ("pending", made, delay)
        assert after.endpoint == "unchanged"
    last = next_state(policy, DeliveryState("pending", made, False), ok=False, manual=False)
    assert (last.status, last.auto_attempts, last.retry_in, last.endpoint) == (
        "failed", 8, None, "failed",
    )  # fmt: skip


def test_a_success_settles_the_delivery_and_resets_the_endpoint() -> None:
    after = next_state(DeliveryPolicy(), DeliveryState("pending", 3, False), ok=True, manual=False)
    assert (after.status, after.retry_in, after.endpoint) == ("succeeded", None, "succeeded")


def test_a_manual_attempt_never_schedules_retries_nor_counts_again() -> None:
    policy = DeliveryPolicy()
    for status in ("failed", "pending", "succeeded"):
        after = next_state(policy, DeliveryState(status, 8, False), ok=False, manual=True)
        assert after.retry_in is None and after.endpoint == "unchanged"
        assert after.auto_attempts == 8
    # a manual failure while a scheduled retry is queued leaves the delivery pending
    queued = next_state(policy, DeliveryState("pending", 2, True), ok=False, manual=True)
    assert (queued.status, queued.retry_in, queued.endpoint) == ("pending", None, "unchanged")


def test_an_event_whose_schedule_runs_out_counts_even_with_a_manual_attempt_queued() -> None:
    # The eighth scheduled attempt fails while a manual redelivery is queued: the event
    # stays pending for that attempt, but it has failed its schedule and counts now...
    policy = DeliveryPolicy()
    last = next_state(policy, DeliveryState("pending", 7, True), ok=False, manual=False)
    assert (last.status, last.auto_attempts, last.endpoint) == ("pending", 8, "failed")
    # ... so the manual attempt that then fails does not count it again,
    ended = next_state(policy, DeliveryState("pending", 8, False), ok=False, manual=True)
    assert (ended.status, ended.retry_in, ended.endpoint) == ("failed", None, "unchanged")
    # and one that succeeds resets the endpoint's run, as any success does.
    saved = next_state(policy, DeliveryState("pending", 8, False), ok=True, manual=True)
    assert (saved.status, saved.endpoint) == ("succeeded", "succeeded")
    # Before the schedule runs out, a queued manual attempt changes nothing.
    early = next_state(policy, DeliveryState("pending", 2, True), ok=False, manual=False)
    assert (early.status, early.endpoint) == ("pending", "unchanged")


def test_late_results_change_nothing() -> None:
    policy = DeliveryPolicy()
    canceled = next_state(policy, DeliveryState("canceled", 1, False), ok=True, manual=False)
    assert (canceled.status, canceled.endpoint) == ("canceled", "unchanged")
    late = next_state(policy, DeliveryState("succeeded", 1, False), ok=False, manual=True)
    assert (late.status, late.endpoint) == ("succeeded", "unchanged")


# ---------------------------------------------------------------------- over real HTTP

FAST = HOUR / 0.01  # one hour of the schedule lasts 10 ms


def _emit(emulator: Emulator, name: str = "payment.failed") -> str:
    event_id: str = emulator.api("POST", "/api/emulator/events", json={"event": name})["id"]
    return event_id


def _delivery_of(emulator: Emulator, event_id: str) -> dict[str, object]:
    (delivery,) = emulator.deliveries(eventId=event_id)
    return delivery


def test_three_failed_events_disable_the_endpoint_after_the_eighth_attempt_of_the_third(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 10**6
    emulator = make_emulator(time_scale=FAST)  # the platform policy, only faster
    created = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    endpoint_path = f"/api/v1/webhooks/{created['id']}"

    for number in (1, 2, 3):
        event_id = _emit(emulator)
        failed = emulator.wait_delivery(
            lambda d, e=event_id: d["eventId"] == e and d["status"] == "failed", timeout=30
        )
        assert len(failed["attempts"]) == 8
        assert all(not a["manual"] and a["statusCode"] == 500 for a in failed["attempts"])
        active = emulator.api("GET", endpoint_path)["isActive"]
        assert active is (number < 3), number
    assert len(recorder.requests) == 24

    # while disabled, new events are recorded but not delivered, and never replayed
    missed = _emit(emulator, "invoice.created")
    assert emulator.deliveries(eventId=missed) == []
    recorder.fail_next = 0
    enabled = emulator.api("PATCH", endpoint_path, json={"isActive": True})
    assert enabled["isActive"] is True
    fresh = _emit(emulator, "payment.received")
    (request,) = recorder.wait_for(25)[24:]
    assert request.headers["x-commet-event-id"] == fresh
    time.sleep(0.3)  # room for a replay that must not come
    assert len(recorder.requests) == 25
    assert emulator.deliveries(eventId=missed) == []


def test_a_failed_event_resets_nothing_and_a_success_resets_the_run(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(time_scale=FAST, retry_schedule=[60])
    created = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    for fail in (True, True, False, True, True):
        recorder.fail_next = 2 if fail else 0
        event_id = _emit(emulator)
        emulator.wait_delivery(
            lambda d, e=event_id: d["eventId"] == e and d["status"] in ("failed", "succeeded")
        )
    assert emulator.api("GET", f"/api/v1/webhooks/{created['id']}")["isActive"] is True


def test_a_manual_redelivery_does_not_schedule_retries(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 10**6
    emulator = make_emulator(time_scale=FAST, retry_schedule=[60], auto_disable_after=2)
    created = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    event_id = _emit(emulator)
    failed = emulator.wait_delivery(lambda d: d["eventId"] == event_id and d["status"] == "failed")
    assert len(failed["attempts"]) == 2

    for _ in range(2):  # two manual attempts, both failing
        emulator.api("POST", f"/api/emulator/deliveries/{failed['id']}/retry")
        count = len(recorder.requests) + 1
        recorder.wait_for(count)
        wait_until(
            lambda c=count: (
                len(emulator.api("GET", f"/api/emulator/deliveries/{failed['id']}")["attempts"])
                == c
            ),
            what="manual attempt recorded",
        )
    time.sleep(0.3)  # far longer than the retry delay: no scheduled retry follows
    after = emulator.api("GET", f"/api/emulator/deliveries/{failed['id']}")
    assert [a["manual"] for a in after["attempts"]] == [False, False, True, True]
    assert after["status"] == "failed" and after["nextAttemptAt"] is None
    assert len(recorder.requests) == 4
    # the event counted once for its endpoint: one failed event, not three
    assert emulator.api("GET", f"/api/v1/webhooks/{created['id']}")["isActive"] is True
