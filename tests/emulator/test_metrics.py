"""The emulator's own metrics, scraped over HTTP from a running emulator.

Receivers are real servers on 127.0.0.1 (one answering 500, one never answering, a
closed port); the counts are compared with the attempt log the emulator's API shows.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commet_webhooks.emulator.metrics import ATTEMPT_RESULTS, EMULATOR_METRICS, EmulatorMetrics
from commet_webhooks.emulator.storage import AttemptOutcome
from emulator.emulator_helpers import API_KEY, Emulator, Receiver, free_port, wait_until

ATTEMPTS = "commet_emulator_delivery_attempts_total"
DURATION = "commet_emulator_delivery_attempt_duration_seconds"
FAILED = "commet_emulator_events_failed_total"
DISABLES = "commet_emulator_endpoint_auto_disables_total"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape_text(emulator: Emulator) -> str:
    """``GET /metrics`` without an API key, as a Prometheus server would."""
    response = httpx.get(emulator.url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def scrape(emulator: Emulator) -> Samples:
    """Every sample of the scrape: name -> sorted labels -> value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(scrape_text(emulator)):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return samples.get(name, {})


def logged_attempts(emulator: Emulator) -> list[dict[str, Any]]:
    return [attempt for d in emulator.deliveries() for attempt in d["attempts"]]


def post_event(emulator: Emulator, event: str) -> None:
    emulator.api("POST", "/api/emulator/events", json={"event": event})


def scrape_once_counted(emulator: Emulator, attempts: int) -> Samples:
    """A scrape taken once it counts ``attempts`` attempts (the log and the counters are
    written one after the other)."""
    found: Samples = {}

    def counted() -> bool:
        nonlocal found
        found = scrape(emulator)
        return sum(series(found, ATTEMPTS).values()) >= attempts

    wait_until(counted, what=f"{attempts} attempts counted")
    return found


def test_failed_events_and_the_auto_disable_are_counted(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 1000  # every POST answers 500
    emulator = make_emulator(retry_schedule=[0.01])  # 2 attempts per event; disable after 3
    endpoint = emulator.endpoint(url)
    for _ in range(3):
        post_event(emulator, "payment.failed")
    wait_until(lambda: len(emulator.deliveries(status="failed")) == 3, what="3 failed deliveries")
    wait_until(
        lambda: not emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"],
        what="endpoint auto-disabled",
    )
    attempts = logged_attempts(emulator)
    assert len(attempts) == 6 and all(a["statusCode"] == 500 for a in attempts)

    samples = scrape_once_counted(emulator, len(attempts))
    assert series(samples, ATTEMPTS) == {
        (("event_type", "payment.failed"), ("result", "http_error")): 6.0
    }
    assert series(samples, FAILED) == {(("event_type", "payment.failed"),): 3.0}
    assert series(samples, DISABLES) == {(): 1.0}
    assert series(samples, DURATION + "_count") == {(("event_type", "payment.failed"),): 6.0}
    buckets = series(samples, DURATION + "_bucket")
    assert buckets[(("event_type", "payment.failed"), ("le", "+Inf"))] == 6.0
    assert len(recorder.requests) == 6

    # Disabled: a new event is not delivered, and nothing more is counted.
    post_event(emulator, "payment.failed")
    assert emulator.api("GET", "/api/emulator/events", params={"limit": 1})[0]["deliveries"] == []
    again = scrape(emulator)
    assert series(again, ATTEMPTS) == series(samples, ATTEMPTS)
    assert series(again, DISABLES) == {(): 1.0}

    text = scrape_text(emulator)
    assert endpoint["secret"] not in text and API_KEY not in text


def test_successful_attempts_are_counted_as_ok(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 1  # the first attempt answers 500, the retry 200
    emulator.endpoint(url)
    post_event(emulator, "invoice.created")
    post_event(emulator, "subscription.activated")
    wait_until(lambda: len(emulator.deliveries(status="succeeded")) == 2, what="2 deliveries")
    attempts = logged_attempts(emulator)
    assert sorted(a["statusCode"] for a in attempts) == [200, 200, 500]

    samples = scrape_once_counted(emulator, len(attempts))
    counted = series(samples, ATTEMPTS)
    assert sum(counted.values()) == 3.0
    assert sum(v for k, v in counted.items() if ("result", "ok") in k) == 2.0
    assert sum(v for k, v in counted.items() if ("result", "http_error") in k) == 1.0
    assert {dict(k)["event_type"] for k in counted} == {"invoice.created", "subscription.activated"}
    assert series(samples, FAILED) == {}
    assert series(samples, DISABLES) == {(): 0.0}
    assert sum(series(samples, DURATION + "_count").values()) == 3.0


def test_an_unreachable_receiver_is_a_connection_error(
    make_emulator: Callable[..., Emulator],
) -> None:
    emulator = make_emulator(retry_schedule=[], auto_disable_after=None)
    emulator.endpoint(f"http://127.0.0.1:{free_port()}/hook")
    post_event(emulator, "payment.failed")
    emulator.wait_delivery(lambda d: d["status"] == "failed")
    samples = scrape_once_counted(emulator, 1)
    assert series(samples, ATTEMPTS) == {
        (("event_type", "payment.failed"), ("result", "connection_error")): 1.0
    }
    assert series(samples, FAILED) == {(("event_type", "payment.failed"),): 1.0}
    assert series(samples, DISABLES) == {(): 0.0}


def test_a_receiver_that_never_answers_is_a_timeout(
    make_emulator: Callable[..., Emulator],
) -> None:
    silent = socket.socket()  # accepts connections (backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        emulator = make_emulator(retry_schedule=[], timeout=0.3)
        emulator.endpoint(f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
        post_event(emulator, "payment.failed")
        delivery = emulator.wait_delivery(lambda d: d["status"] == "failed")
        assert delivery["attempts"][0]["error"] == "no answer within 0.3 s"
        samples = scrape_once_counted(emulator, 1)
    finally:
        silent.close()
    assert series(samples, ATTEMPTS) == {
        (("event_type", "payment.failed"), ("result", "timeout")): 1.0
    }


def test_an_answer_dropped_by_chaos_is_counted_as_dropped(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(retry_schedule=[], chaos="drop=1")
    emulator.endpoint(url)
    post_event(emulator, "payment.failed")
    emulator.wait_delivery(lambda d: d["status"] == "failed")
    assert len(recorder.requests) == 1  # the receiver answered 200; the answer was "lost"
    samples = scrape_once_counted(emulator, 1)
    assert series(samples, ATTEMPTS) == {
        (("event_type", "payment.failed"), ("result", "dropped")): 1.0
    }
    assert series(samples, FAILED) == {(("event_type", "payment.failed"),): 1.0}


def test_a_chaos_duplicate_is_a_second_post_but_one_logged_attempt(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(chaos="duplicates=1")
    emulator.endpoint(url)
    post_event(emulator, "payment.failed")
    delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    assert [a["note"] for a in delivery["attempts"]] == ["chaos: sent twice"]
    recorder.wait_for(2)
    samples = scrape_once_counted(emulator, 2)
    assert series(samples, ATTEMPTS) == {(("event_type", "payment.failed"), ("result", "ok")): 2.0}


def test_event_types_outside_the_registry_share_one_label() -> None:
    metrics = EmulatorMetrics()
    answered = AttemptOutcome("2026-01-01T00:00:00Z", 0.0, 204, 3.0, None, None)
    for event_type in ("loyalty.points_awarded", "x" * 500, "payment.failed"):
        metrics.attempt(event_type, answered)
        metrics.event_failed(event_type)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    assert samples[ATTEMPTS, (("event_type", "unknown"), ("result", "ok"))] == 2.0
    assert samples[ATTEMPTS, (("event_type", "payment.failed"), ("result", "ok"))] == 1.0
    assert samples[FAILED, (("event_type", "unknown"),)] == 2.0
    assert "loyalty" not in body.decode()


def test_each_app_counts_its_own_deliveries(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    busy, idle = make_emulator(time_scale=3000), make_emulator(time_scale=3000)
    busy.endpoint(url)
    post_event(busy, "payment.failed")
    busy.wait_delivery(lambda d: d["status"] == "succeeded")
    assert sum(series(scrape_once_counted(busy, 1), ATTEMPTS).values()) == 1.0
    quiet = scrape(idle)
    assert series(quiet, ATTEMPTS) == {} and series(quiet, DISABLES) == {(): 0.0}


def test_metrics_answer_only_this_emulators_host_names(emulator: Emulator) -> None:
    response = httpx.get(emulator.url + "/metrics", headers={"host": "attacker.example"})
    assert response.status_code == 421


def test_without_prometheus_client_metrics_is_501_with_the_fix(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = make_emulator()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    response = httpx.get(emulator.url + "/metrics")
    assert response.status_code == 501
    assert response.text.count("\n") == 1
    assert 'pip install "commet-webhooks[prometheus]"' in response.text


def test_the_docs_list_every_metric_and_result() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("emulator.md", "observability.md"):
        text = (docs / page).read_text("utf-8")
        for spec in EMULATOR_METRICS:
            assert f"`{spec.name}`" in text, (page, spec.name)
        for result in ATTEMPT_RESULTS:
            assert f"`{result}`" in text, (page, result)
