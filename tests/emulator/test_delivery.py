"""Delivery over real HTTP: signature, headers, envelope, retries, filtering, redelivery."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from commet_webhooks import PaymentFailed, construct_event, verify
from commet_webhooks._wire import API_VERSION
from commet_webhooks.emulator import DEFAULT_RETRY_SCHEDULE, DeliveryPolicy
from commet_webhooks.emulator.delivery import DELIVERY_TIMEOUT, DeliveryEngine
from commet_webhooks.emulator.storage import AttemptOutcome, Job, Storage
from emulator.emulator_helpers import Emulator, Receiver, ThreadedServer, free_port, wait_until

SCALE = 3000  # 60 s -> 20 ms


def test_delivery_is_signed_with_commet_headers_and_envelope(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    endpoint = emulator.endpoint(url)
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    event_id = emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})["id"]
    assert event_id.startswith("whev_")

    (request,) = recorder.wait_for(1)
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert verify(request.body, headers["x-commet-signature"], endpoint["secret"])
    assert not verify(request.body, headers["x-commet-signature"], "whsec_other")
    assert headers["x-commet-event"] == "payment.failed"
    assert headers["x-commet-event-id"] == event_id
    envelope = json.loads(request.body)
    assert set(envelope) == {
        "id", "event", "timestamp", "organizationId", "mode", "apiVersion", "data",
    }  # fmt: skip
    assert envelope["id"] == event_id
    assert envelope["event"] == "payment.failed"
    assert envelope["mode"] == "sandbox"
    assert envelope["apiVersion"] == API_VERSION
    assert headers["x-commet-timestamp"] == envelope["timestamp"]
    assert datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00")).tzinfo
    event = construct_event(request.body, headers["x-commet-signature"], endpoint["secret"])
    assert isinstance(event, PaymentFailed)

    delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    assert delivery["eventId"] == event_id and delivery["endpointId"] == endpoint["id"]
    (attempt,) = delivery["attempts"]
    assert attempt["statusCode"] == 200 and attempt["error"] is None
    assert attempt["latencyMs"] >= 0 and attempt["attemptedAt"].endswith("Z")
    assert json.loads(attempt["response"]) == {"received": True}


def test_given_data_is_sent_verbatim(emulator: Emulator, receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    emulator.endpoint(url)
    data = {"anything": [1, 2, 3], "nested": {"ok": True}}
    emulator.api("POST", "/api/emulator/events", json={"event": "trial.will_end", "data": data})
    (request,) = recorder.wait_for(1)
    assert json.loads(request.body)["data"] == data
    assert request.headers["x-commet-event"] == "trial.will_end"


def test_retries_follow_the_scaled_schedule_with_identical_bytes(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 4
    emulator.endpoint(url)
    event_id = emulator.api("POST", "/api/emulator/events", json={"event": "invoice.created"})["id"]
    requests = recorder.wait_for(5, timeout=30)
    assert len({r.body for r in requests}) == 1
    assert {r.headers["x-commet-event-id"] for r in requests} == {event_id}
    assert len({r.headers["x-commet-signature"] for r in requests}) == 1
    arrivals = [r.at for r in requests]
    for index, (earlier, later) in enumerate(itertools.pairwise(arrivals)):
        assert later - earlier >= DEFAULT_RETRY_SCHEDULE[index] / SCALE, index

    delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 500, 500, 200]
    assert delivery["nextAttemptAt"] is None


def test_delivery_fails_after_the_last_retry(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 100
    emulator = make_emulator(retry_schedule=[0.02, 0.04, 0.06])
    emulator.endpoint(url)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.received"})
    delivery = emulator.wait_delivery(lambda d: d["status"] == "failed")
    assert len(delivery["attempts"]) == 4
    assert all(a["statusCode"] == 500 for a in delivery["attempts"])
    assert delivery["nextAttemptAt"] is None
    assert len(recorder.requests) == 4


def test_unreachable_receiver_logs_the_error(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(retry_schedule=[])
    emulator.endpoint(f"http://127.0.0.1:{free_port()}/hook")
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    delivery = emulator.wait_delivery(lambda d: d["status"] == "failed")
    (attempt,) = delivery["attempts"]
    assert attempt["statusCode"] is None and attempt["error"]


def test_endpoints_only_get_the_events_they_subscribe_to(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    payments = emulator.endpoint(url, ["payment.failed", "payment.received"])
    everything = emulator.endpoint(url + "?all=1")
    emulator.api("POST", "/api/emulator/events", json={"event": "invoice.created"})
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    requests = recorder.wait_for(3)
    wait_until(lambda: len(emulator.deliveries(status="succeeded")) == 3, what="3 deliveries")
    by_endpoint = {
        endpoint_id: sorted(d["event"] for d in emulator.deliveries(endpointId=endpoint_id))
        for endpoint_id in (payments["id"], everything["id"])
    }
    assert by_endpoint == {
        payments["id"]: ["payment.failed"],
        everything["id"]: ["invoice.created", "payment.failed"],
    }
    assert len(requests) == 3


def test_manual_redelivery_makes_a_new_attempt_with_the_same_bytes(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator.endpoint(url)
    emulator.api("POST", "/api/emulator/events", json={"event": "subscription.activated"})
    delivery = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    queued = emulator.api("POST", f"/api/emulator/deliveries/{delivery['id']}/retry")
    assert queued["id"] == delivery["id"]
    first, second = recorder.wait_for(2)
    assert first.body == second.body
    assert first.headers["x-commet-event-id"] == second.headers["x-commet-event-id"]
    after = emulator.wait_delivery(
        lambda d: d["id"] == delivery["id"] and len(d["attempts"]) == 2 and d["status"] != "pending"
    )
    assert after["status"] == "succeeded"
    assert [a["manual"] for a in after["attempts"]] == [False, True]


def test_manual_redelivery_of_a_failed_delivery(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 1
    emulator = make_emulator(retry_schedule=[])
    emulator.endpoint(url)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    failed = emulator.wait_delivery(lambda d: d["status"] == "failed")
    emulator.api("POST", f"/api/emulator/deliveries/{failed['id']}/retry")
    fixed = emulator.wait_delivery(lambda d: d["status"] == "succeeded")
    assert [a["statusCode"] for a in fixed["attempts"]] == [500, 200]


def test_redelivery_of_an_unknown_delivery_is_404(emulator: Emulator) -> None:
    response = emulator.client.post("/api/emulator/deliveries/dlv_nope/retry")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_endpoint_is_disabled_after_consecutive_failed_events(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 1000
    emulator = make_emulator(retry_schedule=[0.01], auto_disable_after=2)
    endpoint = emulator.endpoint(url)
    for _ in range(2):
        emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    wait_until(lambda: len(emulator.deliveries(status="failed")) == 2, what="2 failed deliveries")
    wait_until(
        lambda: not emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"],
        what="endpoint disabled",
    )
    seen = len(recorder.requests)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    assert (
        len(emulator.api("GET", "/api/emulator/events", params={"limit": 1})[0]["deliveries"]) == 0
    )
    assert len(recorder.requests) == seen

    enabled = emulator.api("PATCH", f"/api/webhooks/{endpoint['id']}", json={"enabled": True})
    assert enabled["enabled"] is True


def test_success_resets_the_failure_count(
    make_emulator: Callable[..., Emulator], receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    emulator = make_emulator(retry_schedule=[], auto_disable_after=2)
    endpoint = emulator.endpoint(url)
    for fail in (True, False, True):
        recorder.fail_next = 1 if fail else 0
        count = len(recorder.requests) + 1  # before posting: the delivery can beat us
        emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
        recorder.wait_for(count)
        wait_until(
            lambda count=count: (
                sum(len(d["attempts"]) for d in emulator.deliveries() if d["status"] != "pending")
                == count
            ),
            what="attempt recorded",
        )
    assert emulator.api("GET", f"/api/webhooks/{endpoint['id']}")["enabled"] is True


def test_deleted_endpoint_gets_nothing_and_pending_deliveries_are_canceled(
    make_emulator: Callable[..., Emulator],
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hook"
    emulator = make_emulator()  # real-time schedule: the retry stays pending
    endpoint = emulator.endpoint(down)
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    emulator.wait_delivery(lambda d: len(d["attempts"]) == 1 and d["nextAttemptAt"])
    emulator.api("DELETE", f"/api/webhooks/{endpoint['id']}")
    assert emulator.api("GET", "/api/webhooks") == []
    (delivery,) = emulator.deliveries()
    assert delivery["status"] == "canceled" and delivery["nextAttemptAt"] is None
    response = emulator.client.delete(f"/api/webhooks/{endpoint['id']}")
    assert response.status_code == 404


def test_deliveries_run_concurrently(make_emulator: Callable[..., Emulator]) -> None:
    """A slow receiver does not hold up the others: many deliveries overlap in time."""
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    active = {"now": 0, "peak": 0}
    lock = threading.Lock()

    async def slow(request: Request) -> Response:
        with lock:
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])
        await asyncio.sleep(0.3)
        with lock:
            active["now"] -= 1
        return Response(b"{}", 200)

    server = ThreadedServer(Starlette(routes=[Route("/slow", slow, methods=["POST"])])).start()
    try:
        emulator = make_emulator()
        emulator.endpoint(server.url + "/slow")
        for _ in range(10):
            emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
        wait_until(lambda: len(emulator.deliveries(status="succeeded")) == 10, what="10 done")
        assert active["peak"] > 1
    finally:
        server.stop()


def test_a_receiver_that_never_answers_times_out(tmp_path: Path) -> None:
    """The engine gives up on an attempt after its timeout (10 s by default)."""
    assert DELIVERY_TIMEOUT == 10.0
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    job = Job(
        outbox_id=0, delivery_id="dlv_t", endpoint_id="ep_t", manual=False,
        url=f"http://127.0.0.1:{silent.getsockname()[1]}/hook", event_id="whev_t",
        event_type="payment.failed", timestamp="2026-01-01T00:00:00.000Z", body=b"{}",
        secret="whsec_timeout_test",
    )  # fmt: skip

    async def attempt_once() -> AttemptOutcome:
        engine = DeliveryEngine(Storage(str(tmp_path / "t.db")), DeliveryPolicy(timeout=0.3))
        await engine.start()
        try:
            return await engine.attempt(job)
        finally:
            await engine.stop()

    try:
        outcome = asyncio.run(attempt_once())
    finally:
        silent.close()
    assert outcome.status_code is None and not outcome.ok
    assert outcome.error == "no answer within 0.3 s"
    assert outcome.latency_ms >= 300
    assert "whsec_timeout_test" not in repr(job)
