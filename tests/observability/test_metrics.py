"""Metrics through OpenTelemetry's in-memory reader and a prometheus_client registry, alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from observe_helpers import (
    OLD_SECRET,
    SECRET,
    DownStore,
    ListQueue,
    Telemetry,
    event_id,
    instrumented,
    request,
)
from prometheus_client import CollectorRegistry, generate_latest

from commet_webhooks import MemoryStore, Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.observability import METRICS, instrument
from commet_webhooks.testing import sample_event, sign, signed_request


def ok(event: Any) -> None:
    return None


def fail(event: Any) -> None:
    raise ValueError("handler failed on purpose")


def both(telemetry: Telemetry, name: str, **labels: str) -> tuple[float, float]:
    """A counter's value as Prometheus exposes it and as OpenTelemetry reads it."""
    spec = next(m for m in METRICS if m.prometheus == name)
    otel = telemetry.point(spec.otel, **labels)
    return telemetry.prom(name, **labels), 0.0 if otel is None else float(otel)


def test_deliveries_by_event_type_and_outcome(telemetry: Telemetry) -> None:
    store = MemoryStore()
    webhooks = Webhooks(
        SECRET, idempotency_store=store, on_payment_failed=ok, on_invoice_created=fail
    )
    instrumented(telemetry, webhooks)
    payment = request("payment.failed")
    invoice = request("invoice.created")
    busy = request("payment.failed")
    store.claim(event_id(busy[0]), "another-worker")
    answers = [
        webhooks.handle_sync(*payment),
        webhooks.handle_sync(*payment),  # duplicate
        webhooks.handle_sync(*invoice),  # handler error
        webhooks.handle_sync(*busy),
        webhooks.handle_sync(payment[0], {}),  # no signature
        webhooks.handle_sync(b"[1]", {"X-Commet-Signature": sign(b"[1]", SECRET)}),
    ]
    assert [a.outcome.value for a in answers] == [
        "ok", "duplicate", "handler_error", "busy", "invalid_signature", "invalid_payload",
    ]  # fmt: skip
    total = "commet_webhooks_deliveries_total"
    assert both(telemetry, total, event_type="payment.failed", outcome="ok") == (1, 1)
    assert both(telemetry, total, event_type="payment.failed", outcome="duplicate") == (1, 1)
    assert both(telemetry, total, event_type="payment.failed", outcome="busy") == (1, 1)
    assert both(telemetry, total, event_type="invoice.created", outcome="handler_error") == (1, 1)
    # Nothing could be read: the bounded "none" label, never the unverified header.
    assert both(telemetry, total, event_type="none", outcome="invalid_signature") == (1, 1)
    assert both(telemetry, total, event_type="none", outcome="invalid_payload") == (1, 1)
    assert both(telemetry, "commet_webhooks_duplicates_total", event_type="payment.failed") == (
        1,
        1,
    )
    errors = "commet_webhooks_handler_errors_total"
    assert both(telemetry, errors, event_type="invoice.created", handler="fail") == (1, 1)
    assert both(telemetry, errors, event_type="payment.failed", handler="ok") == (0, 0)

    # Durations: one observation per delivery, per handler call, per store call.
    assert (
        telemetry.prom(
            "commet_webhooks_delivery_duration_seconds_count", event_type="payment.failed"
        )
        == 3
    )
    assert telemetry.point("commet_webhooks.delivery.duration", event_type="payment.failed") == 3
    assert telemetry.prom("commet_webhooks_admission_duration_seconds_count") == 6
    assert telemetry.point("commet_webhooks.admission.duration") == 6
    handler = {"event_type": "payment.failed", "handler": "ok"}
    assert telemetry.prom("commet_webhooks_handler_duration_seconds_count", **handler) == 1
    assert telemetry.point("commet_webhooks.handler.duration", **handler) == 1
    # claim x4 (ok, duplicate, handler error, busy), complete x1, release x1 (handler error)
    for operation, calls in (("claim", 4), ("complete", 1), ("release", 1)):
        assert (
            telemetry.prom("commet_webhooks_store_duration_seconds_count", operation=operation)
            == calls
        )
        assert telemetry.point("commet_webhooks.store.duration", operation=operation) == calls
    # Buckets are cumulative and end with +Inf == count.
    inf = telemetry.prom(
        "commet_webhooks_delivery_duration_seconds_bucket", event_type="payment.failed", le="+Inf"
    )
    ten = telemetry.prom(
        "commet_webhooks_delivery_duration_seconds_bucket", event_type="payment.failed", le="10.0"
    )
    assert inf == ten == 3


def test_store_errors_and_the_outage_outcome(telemetry: Telemetry) -> None:
    webhooks = Webhooks(SECRET, idempotency_store=DownStore(), on_payment_failed=ok)
    instrumented(telemetry, webhooks)
    for _ in range(2):
        assert asyncio.run(webhooks.handle(*request())).status == 503
    assert both(telemetry, "commet_webhooks_store_errors_total", operation="claim") == (2, 2)
    assert both(
        telemetry,
        "commet_webhooks_deliveries_total",
        event_type="payment.failed",
        outcome="store_unavailable",
    ) == (2, 2)


def test_queued_and_offload_unavailable(telemetry: Telemetry) -> None:
    queue = ListQueue()
    webhooks = Webhooks(SECRET, offload=queue)
    instrumented(telemetry, webhooks)
    webhooks.handle_sync(*request())
    queue.down = True
    webhooks.handle_sync(*request())
    total = "commet_webhooks_deliveries_total"
    assert both(telemetry, total, event_type="payment.failed", outcome="queued") == (1, 1)
    assert both(telemetry, total, event_type="payment.failed", outcome="offload_unavailable") == (
        1,
        1,
    )


def test_unknown_event_types_collapse_to_one_label(telemetry: Telemetry) -> None:
    webhooks = Webhooks(SECRET, on_payload=ok)
    instrumented(telemetry, webhooks)
    for name in ("brand.new_event", "another.one", "yet.another"):
        assert name not in EVENT_TYPES
        assert webhooks.handle_sync(*signed_request(sample_event(name), SECRET)).status == 200
    total = "commet_webhooks_deliveries_total"
    assert both(telemetry, total, event_type="unknown", outcome="ok") == (3, 3)
    exposition = generate_latest(telemetry.registry).decode()
    assert "brand.new_event" not in exposition and "another.one" not in exposition


def test_which_secret_verified_each_delivery(telemetry: Telemetry) -> None:
    webhooks = Webhooks([SECRET, OLD_SECRET], on_payload=ok)
    instrumented(telemetry, webhooks)
    webhooks.handle_sync(*request(secret=OLD_SECRET))
    webhooks.handle_sync(*request(secret=OLD_SECRET))
    webhooks.handle_sync(*request(secret=SECRET))
    used = "commet_webhooks_secret_used_total"
    old = {"secret_position": "1", "secret_fingerprint": webhooks._keys.fingerprint(1)}
    new = {"secret_position": "0", "secret_fingerprint": webhooks._keys.fingerprint(0)}
    assert both(telemetry, used, **old) == (2, 2)
    assert both(telemetry, used, **new) == (1, 1)
    assert old["secret_fingerprint"].startswith("sha256:") and len(old["secret_fingerprint"]) == 15


def test_consecutive_failures_count_non_2xx_answers_until_a_2xx(telemetry: Telemetry) -> None:
    webhooks = Webhooks(SECRET, on_payload=ok)
    instrumented(telemetry, webhooks)
    body, headers = request()
    forged = {**headers, "X-Commet-Signature": "0" * 64}
    for expected in (1, 2, 3):
        webhooks.handle_sync(body, forged)
        assert telemetry.prom("commet_webhooks_consecutive_failures") == expected
        assert telemetry.point("commet_webhooks.consecutive_failures") == expected
    webhooks.handle_sync(body, headers)
    assert telemetry.prom("commet_webhooks_consecutive_failures") == 0
    assert telemetry.point("commet_webhooks.consecutive_failures") == 0


def test_receivers_sharing_a_registry_share_its_metrics(telemetry: Telemetry) -> None:
    first, second = Webhooks(SECRET), Webhooks(SECRET)
    instrumented(telemetry, first)
    instrumented(telemetry, second)  # no "duplicated timeseries" error
    first.handle_sync(*request())
    second.handle_sync(*request())
    assert (
        telemetry.prom(
            "commet_webhooks_deliveries_total", event_type="payment.failed", outcome="ok"
        )
        == 2
    )


def test_names_follow_prometheus_conventions() -> None:
    registry = CollectorRegistry()
    webhooks = Webhooks(SECRET, idempotency_store=DownStore(), on_payload=fail)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)
    webhooks.handle_sync(*request())
    exposed = {metric.name: metric.type for metric in registry.collect()}
    for spec in METRICS:
        if spec.kind == "counter":
            assert spec.prometheus.endswith("_total")
            assert exposed[spec.prometheus.removesuffix("_total")] == "counter"
        elif spec.kind == "histogram":
            assert spec.prometheus.endswith("_seconds") and spec.unit == "s"
            assert exposed[spec.prometheus] == "histogram"
        else:
            assert exposed[spec.prometheus] == "gauge"
        # OpenTelemetry's own Prometheus exporter derives the same name from ours.
        derived = spec.otel.replace(".", "_") + ("_seconds" if spec.unit == "s" else "")
        assert derived + ("_total" if spec.kind == "counter" else "") == spec.prometheus


@pytest.mark.parametrize("broken", ["exporter", "delivery_started"])
@pytest.mark.parametrize("drive", ["async", "sync"])
def test_a_broken_exporter_never_changes_the_answer(
    telemetry: Telemetry,
    drive: str,
    broken: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from commet_webhooks.observability import _logs, _metrics

    def fails(*args: Any) -> None:
        raise RuntimeError("exporter is down")

    ran: list[Any] = []
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=ran.append)
    observer = instrumented(telemetry, webhooks)
    if broken == "exporter":
        monkeypatch.setattr(_metrics.Aggregate, "record", fails)
    else:
        monkeypatch.setattr(observer, "delivery_started", fails)  # every later hook gets None
    body, headers = request()
    if drive == "async":
        response = asyncio.run(webhooks.handle(body, headers))
    else:
        response = webhooks.handle_sync(body, headers)
    assert response.status == 200 and response.outcome == "ok" and len(ran) == 1
    assert "observer hook" in caplog.text and "exporter is down" in caplog.text
    assert _logs.CURRENT.get() is None  # the delivery's log fields did not outlive it


def test_histograms_match_prometheus_clients_own_on_the_same_values() -> None:
    """Bucket edges (a value on a bound counts in it), +Inf and sums, as prometheus_client
    counts them, across several folds."""
    import random

    from prometheus_client import Histogram

    from commet_webhooks.observability._metrics import FOLD_EVERY, SPECS, Aggregate

    bounds = SPECS["delivery.duration"].buckets
    rng = random.Random(7)
    values = [*bounds, 0.0, 16.0, 100.0] + [rng.uniform(0, 20) for _ in range(3 * FOLD_EVERY)]
    reference_registry = CollectorRegistry()
    reference = Histogram("reference", "same values", buckets=bounds, registry=reference_registry)
    aggregate = Aggregate()
    for seconds in values:
        reference.observe(seconds)
        aggregate.record("payment.failed", "ok", seconds, True, None, None, None)
    _, histograms, _ = aggregate.snapshot()
    mine = histograms["delivery.duration"][("payment.failed",)]
    expected = {
        sample.labels["le"]: sample.value
        for sample in reference_registry.collect().__next__().samples
        if sample.name == "reference_bucket"
    }
    cumulative = 0.0
    for bound, count in zip((*bounds, float("inf")), mine, strict=False):
        cumulative += count
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        assert cumulative == expected[le], le
    assert mine[-1] == pytest.approx(sum(values))
    assert cumulative == len(values)


def test_concurrent_deliveries_lose_no_count() -> None:
    import threading

    from commet_webhooks.observability._metrics import FOLD_EVERY, Aggregate

    aggregate = Aggregate()
    threads, per_thread = 8, 5 * FOLD_EVERY
    outcomes = ("ok", "duplicate", "handler_error")
    calls = [("handler", "notify", 0.001, False), ("store", "claim", 0.0002, True)]

    def deliver() -> None:
        for i in range(per_thread):
            aggregate.record(
                "payment.failed" if i % 2 else "invoice.created",
                outcomes[i % 3],
                0.003,
                True,
                0.00002,
                ("0", "abcd1234"),
                calls,
            )

    workers = [threading.Thread(target=deliver) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counters, histograms, _ = aggregate.snapshot()
    total = threads * per_thread
    assert sum(counters["deliveries"].values()) == total
    assert counters["secret.used"][("0", "abcd1234")] == total
    assert counters["store.errors"][("claim",)] == total
    assert sum(sum(h[:-1]) for h in histograms["handler.duration"].values()) == total
    assert sum(histograms["admission.duration"][()][:-1]) == total
    assert counters["duplicates"][("payment.failed",)] + counters["duplicates"][
        ("invoice.created",)
    ] == sum(v for (_, outcome), v in counters["deliveries"].items() if outcome == "duplicate")
    # Between folds, no list holds more than a batch: memory stays bounded.
    assert all(len(series.raw) < FOLD_EVERY for series in aggregate._by_label.values())
