"""Chaos on demand (duplicates, reordering, delays, dropped answers) and fixture export."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable

import pytest

from commet_webhooks import construct_event
from commet_webhooks.emulator.chaos import Chaos, parse_chaos, roll
from emulator.emulator_helpers import Emulator, Receiver, wait_until
from support.cli import run_cli

FAST = 360_000.0  # an hour of the retry schedule lasts 10 ms


def test_chaos_settings_parse_and_refuse_nonsense() -> None:
    chaos = parse_chaos("duplicates=0.1, reorder=0.2,max-delay=1,seed=7")
    assert (chaos.duplicates, chaos.reorder, chaos.max_delay, chaos.seed) == (0.1, 0.2, 1.0, 7)
    assert chaos.active and not Chaos().active
    for bad in ("duplicates=2", "dupes=0.1", "drop", "delay=x", "max_delay=1000"):
        with pytest.raises(ValueError):
            parse_chaos(bad)


def test_the_dice_are_repeatable_and_reorder_only_once() -> None:
    chaos = Chaos(duplicates=0.5, reorder=0.3, delay=0.5, drop=0.2, seed=3)
    first = [roll(chaos, random.Random(3), already_postponed=False) for _ in range(5)]
    again = [roll(chaos, random.Random(3), already_postponed=False) for _ in range(5)]
    assert first == again
    always = Chaos(reorder=1.0)
    assert roll(always, random.Random(), already_postponed=False).postpone > 0
    assert roll(always, random.Random(), already_postponed=True).postpone == 0


def _endpoint_with_chaos(emulator: Emulator, url: str, **chaos: float) -> str:
    endpoint = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    set_to = emulator.api("PUT", f"/api/emulator/webhooks/{endpoint['id']}/chaos", json=chaos)
    assert set_to["own"] is True
    endpoint_id: str = endpoint["id"]
    return endpoint_id


def test_duplicates_send_the_same_bytes_twice(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    _endpoint_with_chaos(emulator, url, duplicates=1.0)
    event_id = emulator.api("POST", "/api/emulator/events", json={"event": "payment.received"})[
        "id"
    ]
    first, second = recorder.wait_for(2)
    assert first.body == second.body and second.headers["x-commet-event-id"] == event_id
    delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    (attempt,) = delivery["attempts"]
    assert attempt["note"] == "chaos: sent twice"


def test_dropped_answers_are_retried_though_the_receiver_got_them(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(time_scale=FAST, retry_schedule=[60], auto_disable_after=None)
    _endpoint_with_chaos(emulator, url, drop=1.0)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    delivery = emulator.wait_delivery(lambda d: d["status"] == "failed")
    assert len(recorder.requests) == 2  # both arrived; both answers were "lost"
    assert all(a["error"].startswith("chaos: answer dropped") for a in delivery["attempts"])


def test_reordering_holds_events_back_but_delivers_each_once(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    endpoint_id = _endpoint_with_chaos(emulator, url, reorder=1.0, max_delay=0.3)
    ids = [
        emulator.api("POST", "/api/emulator/events", json={"event": "invoice.created"})["id"]
        for _ in range(6)
    ]
    requests = recorder.wait_for(6)
    assert Counter(r.headers["x-commet-event-id"] for r in requests) == Counter(ids)
    wait_until(
        lambda: len(emulator.deliveries(status="succeeded")) == 6, what="six deliveries settled"
    )
    assert all(len(d["attempts"]) == 1 for d in emulator.deliveries())
    cleared = emulator.api("DELETE", f"/api/emulator/webhooks/{endpoint_id}/chaos")
    assert cleared["own"] is False and cleared["reorder"] == 0


def test_default_chaos_applies_to_endpoints_without_their_own(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(chaos="duplicates=1")
    endpoint = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    shown = emulator.api("GET", f"/api/emulator/webhooks/{endpoint['id']}/chaos")
    assert shown["duplicates"] == 1.0 and shown["own"] is False
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.received"})
    recorder.wait_for(2)
    tested = emulator.api("POST", f"/api/v1/webhooks/{endpoint['id']}/test")  # never chaotic
    assert tested["success"] is True
    bad = emulator.client.put(
        f"/api/emulator/webhooks/{endpoint['id']}/chaos", json={"duplicates": 3}
    )
    assert bad.status_code == 400


def test_recorded_events_export_as_signed_fixtures(emulator: Emulator) -> None:
    for name in ("payment.failed", "invoice.created", "payment.received"):
        emulator.api("POST", "/api/emulator/events", json={"event": name})
    secret = "whsec_fixture_test_secret"
    fixtures = emulator.api(
        "GET", "/api/emulator/fixtures", params={"secret": secret, "family": "payment"}
    )
    assert [f["event"] for f in fixtures] == ["payment.failed", "payment.received"]
    for fixture in fixtures:
        body = fixture["body"].encode()
        event = construct_event(body, fixture["headers"]["X-Commet-Signature"], secret)
        assert event.id == fixture["id"] == json.loads(body)["id"]
    unsigned = emulator.api("GET", "/api/emulator/fixtures", params={"limit": 1})
    assert "X-Commet-Signature" not in unsigned[0]["headers"]
    refused = emulator.client.get("/api/emulator/fixtures", params={"secret": "nope"})
    assert refused.status_code == 400


def test_chaos_flag_errors_are_usage_errors() -> None:
    result = run_cli("emulator", "--chaos", "duplicates=2", "--port", "0")
    assert result.returncode == 2 and "--chaos" in result.stderr
    assert "Traceback" not in result.stderr
