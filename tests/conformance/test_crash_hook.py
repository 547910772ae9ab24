"""simulate_crash: a no-op for real events, one crash per marked event."""

from __future__ import annotations

import pytest

from commet_webhooks import parse_event
from commet_webhooks.conformance import CRASH_MARKER, SimulatedCrash, simulate_crash
from commet_webhooks.testing import sample_event, signed_request


def event(**extra: object) -> object:
    body, _ = signed_request({**sample_event("subscription.activated"), **extra}, "whsec_x")
    return parse_event(body)


def test_real_events_pass_through() -> None:
    real = event()
    for _ in range(3):
        simulate_crash(real)
    simulate_crash(object())  # anything without an envelope is left alone


def test_a_marked_event_crashes_once_then_lets_the_retry_through() -> None:
    marked = event(**{CRASH_MARKER: True})
    with pytest.raises(SimulatedCrash):
        simulate_crash(marked)
    simulate_crash(marked)  # the retry: same id
    simulate_crash(event(id=marked.raw["id"], **{CRASH_MARKER: True}))  # type: ignore[attr-defined]


def test_only_the_value_true_arms_it() -> None:
    simulate_crash(event(**{CRASH_MARKER: "yes"}))
    simulate_crash(event(**{CRASH_MARKER: 1}))
