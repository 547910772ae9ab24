"""A real scrape: uvicorn serves the webhook route and /metrics; the counters move."""

from __future__ import annotations

import httpx
from observe_helpers import SECRET, request
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount

from commet_webhooks import MemoryStore, Webhooks
from commet_webhooks.observability import instrument, metrics_asgi_app, metrics_wsgi_app
from commet_webhooks.starlette import webhook_route
from support.servers import serve_asgi, serve_wsgi


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def test_scraping_a_running_starlette_app_shows_the_counters_moving() -> None:
    registry = CollectorRegistry()
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=lambda e: None)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)
    app = Starlette(
        routes=[webhook_route(webhooks), Mount("/metrics", app=metrics_asgi_app(registry))]
    )
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=30.0) as http:
        before = http.get("/metrics/")
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("text/plain")
        ok = {"event_type": "payment.failed", "outcome": "ok"}
        assert value(before.text, "commet_webhooks_deliveries_total", **ok) == 0

        body, headers = request()
        assert http.post("/webhooks/commet", content=body, headers=headers).status_code == 200
        assert http.post("/webhooks/commet", content=body, headers=headers).status_code == 200
        forged = {**headers, "X-Commet-Signature": "0" * 64}
        assert http.post("/webhooks/commet", content=body, headers=forged).status_code == 403

        after = http.get("/metrics/").text
    assert value(after, "commet_webhooks_deliveries_total", **ok) == 1
    duplicate = {"event_type": "payment.failed", "outcome": "duplicate"}
    assert value(after, "commet_webhooks_deliveries_total", **duplicate) == 1
    assert value(after, "commet_webhooks_duplicates_total", event_type="payment.failed") == 1
    assert (
        value(
            after,
            "commet_webhooks_deliveries_total",
            event_type="none",
            outcome="invalid_signature",
        )
        == 1
    )
    assert value(after, "commet_webhooks_consecutive_failures") == 1
    assert value(after, "commet_webhooks_store_duration_seconds_count", operation="claim") == 2
    assert value(after, "commet_webhooks_admission_duration_seconds_count") == 3
    fingerprint = webhooks._keys.fingerprint(0)
    used = {"secret_position": "0", "secret_fingerprint": fingerprint}
    assert value(after, "commet_webhooks_secret_used_total", **used) == 2
    assert SECRET not in after


def test_the_wsgi_metrics_app_serves_the_same_registry() -> None:
    registry = CollectorRegistry()
    webhooks = Webhooks(SECRET)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)
    webhooks.handle_sync(*request())
    with serve_wsgi(metrics_wsgi_app(registry)) as base:
        text = httpx.get(base + "/", timeout=30.0).text
    assert (
        value(text, "commet_webhooks_deliveries_total", event_type="payment.failed", outcome="ok")
        == 1
    )
