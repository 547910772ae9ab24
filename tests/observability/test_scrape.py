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


def test_answers_given_before_the_body_is_read_are_counted_too() -> None:
    """405, a declared 413, repeated signatures (ASGI) and an over-limit body (WSGI)."""
    import socket

    from commet_webhooks.wsgi import WebhookApp as WsgiApp

    registry = CollectorRegistry()
    webhooks = Webhooks(SECRET, max_body_bytes=4096, on_payment_failed=lambda e: None)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)
    app = Starlette(
        routes=[webhook_route(webhooks), Mount("/metrics", app=metrics_asgi_app(registry))]
    )
    body, headers = request()
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=30.0) as http:
        assert http.get("/webhooks/commet").status_code == 405
        big = b"{" + b" " * 5000 + b"}"
        assert http.post("/webhooks/commet", content=big, headers=headers).status_code == 413
        # The same header twice, as raw lines (httpx would join a repeated header).
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            lines = [
                "POST /webhooks/commet HTTP/1.1",
                f"Host: {host}",
                f"Content-Length: {len(body)}",
                f"X-Commet-Signature: {headers['X-Commet-Signature']}",
                f"X-Commet-Signature: {headers['X-Commet-Signature']}",
                "Connection: close",
            ]
            raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            assert raw.recv(64).startswith(b"HTTP/1.1 403")
        assert http.post("/webhooks/commet", content=body, headers=headers).status_code == 200
        text = http.get("/metrics/").text

    with serve_wsgi(WsgiApp(webhooks)) as base:
        # No Content-Length: the limit is found while reading (chunked upload).
        chunks = (b"x" * 1024 for _ in range(8))
        reply = httpx.post(base + "/", content=chunks, headers=headers, timeout=30.0)
        assert reply.status_code == 413
    later = samples(_scrape(registry))

    def count(outcome: str, source: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        labels = frozenset({"event_type": "none", "outcome": outcome}.items())
        return source.get(("commet_webhooks_deliveries_total", labels), 0.0)

    assert count("not_allowed", samples(text)) == 1
    assert count("too_large", samples(text)) == 1
    assert count("invalid_signature", samples(text)) == 1
    # A 405 is never Commet (it only POSTs): the 413 and the 403 were failures in a row,
    # and the 200 after them ended the run.
    assert value(text, "commet_webhooks_consecutive_failures") == 0
    assert count("too_large", later) == 2
    assert value(_scrape(registry), "commet_webhooks_consecutive_failures") == 1


def _scrape(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_a_delivery_the_server_cancels_counts_as_a_failure() -> None:
    """aiohttp (handler_cancellation=True) cancels a handler whose client went away, as
    Django's ASGI handler does: no answer goes out, Commet counts a failed attempt, and
    the metrics say so (outcome "cancelled", one more failure in a row)."""
    import asyncio
    import time

    from aiohttp import web

    from commet_webhooks.aiohttp import webhook_handler
    from support.servers import serve_aiohttp

    registry = CollectorRegistry()
    entered = []

    async def too_slow(event: object) -> None:
        entered.append(event)
        await asyncio.sleep(30)

    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=too_slow)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/commet", webhook_handler(webhooks))
        return app

    body, headers = request()
    with serve_aiohttp(make_app, "/webhooks/commet", handler_cancellation=True) as url:
        try:
            httpx.post(url, content=body, headers=headers, timeout=1.0)
        except httpx.TimeoutException:
            pass  # Commet gives up too, and closes the connection
        else:
            raise AssertionError("the slow handler answered")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = _scrape(registry)
            if value(text, "commet_webhooks_deliveries_total",
                     event_type="payment.failed", outcome="cancelled"):  # fmt: skip
                break
            time.sleep(0.05)
    assert entered, "the handler never started"
    assert value(
        text, "commet_webhooks_deliveries_total", event_type="payment.failed", outcome="cancelled"
    ) == 1
    assert value(text, "commet_webhooks_consecutive_failures") == 1


def test_the_413s_of_a_body_limit_in_front_of_the_app_are_counted() -> None:
    """asgi.BodyLimit (what Django under ASGI is wrapped in) answers 413 before any view:
    given the receiver, its observer counts them like the receiver's own answers."""
    from commet_webhooks.asgi import BodyLimit, WebhookApp

    registry = CollectorRegistry()
    webhooks = Webhooks(SECRET, on_payment_failed=lambda e: None)
    instrument(webhooks, tracing=False, metrics=False, prometheus_registry=registry)
    app = BodyLimit(WebhookApp(webhooks), ["/hook"], max_body_bytes=4096, webhooks=webhooks)
    body, headers = request()

    def chunks() -> object:
        for _ in range(9):
            yield b"x" * 1000

    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=30.0) as http:
        assert http.post("/hook", content=b"x" * 5000, headers=headers).status_code == 413
        assert http.post("/hook", content=chunks(), headers=headers).status_code == 413
        assert http.post("/hook", content=body, headers=headers).status_code == 200
    text = _scrape(registry)
    assert value(
        text, "commet_webhooks_deliveries_total", event_type="none", outcome="too_large"
    ) == 2
    assert value(
        text, "commet_webhooks_deliveries_total", event_type="payment.failed", outcome="ok"
    ) == 1
