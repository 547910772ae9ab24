"""Spans, through the OpenTelemetry SDK and its in-memory exporter, for every outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
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
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode

from commet_webhooks import MemoryStore, WebhookResponse, Webhooks
from commet_webhooks.observability import continue_trace
from commet_webhooks.testing import sign

DRIVES = ("async", "sync")


def deliver(
    webhooks: Webhooks, body: bytes, headers: dict[str, str], drive: str
) -> WebhookResponse:
    if drive == "async":
        return asyncio.run(webhooks.handle(body, headers))
    return webhooks.handle_sync(body, headers)


def fail(event: Any) -> None:
    raise ValueError("handler failed on purpose")


def ok(event: Any) -> None:
    return None


@dataclass
class Case:
    outcome: str
    status: int
    make: Callable[[], tuple[Webhooks, bytes, dict[str, str]]]
    children: list[str] = field(default_factory=list)
    typed: bool = True  # the span names the event
    error: bool = False


def _store_case(
    store: Any = None, **kwargs: Any
) -> Callable[[], tuple[Webhooks, bytes, dict[str, str]]]:
    def make() -> tuple[Webhooks, bytes, dict[str, str]]:
        webhooks = Webhooks(
            SECRET,
            idempotency_store=store if store is not None else MemoryStore(),
            on_payment_failed=ok,
            **kwargs,
        )
        return webhooks, *request()

    return make


def _duplicate() -> tuple[Webhooks, bytes, dict[str, str]]:
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=ok)
    body, headers = request()
    webhooks.handle_sync(body, headers)  # first delivery, before instrumenting
    return webhooks, body, headers


def _busy() -> tuple[Webhooks, bytes, dict[str, str]]:
    store = MemoryStore()
    body, headers = request()
    store.claim(event_id(body), "another-worker")
    return Webhooks(SECRET, idempotency_store=store, on_payment_failed=ok), body, headers


def _handler_error() -> tuple[Webhooks, bytes, dict[str, str]]:
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=fail)
    return webhooks, *request()


def _signed(body: bytes) -> Callable[[], tuple[Webhooks, bytes, dict[str, str]]]:
    def make() -> tuple[Webhooks, bytes, dict[str, str]]:
        return Webhooks(SECRET, on_payload=ok), body, {"X-Commet-Signature": sign(body, SECRET)}

    return make


def _forged() -> tuple[Webhooks, bytes, dict[str, str]]:
    body, headers = request()
    return Webhooks(SECRET, on_payload=ok), body, {**headers, "X-Commet-Signature": "0" * 64}


def _drifted() -> tuple[Webhooks, bytes, dict[str, str]]:
    webhooks = Webhooks(SECRET, on_payload=ok)
    return webhooks, *request("subscription.activated", invoice_total="29.00")


def _queue(down: bool) -> Callable[[], tuple[Webhooks, bytes, dict[str, str]]]:
    def make() -> tuple[Webhooks, bytes, dict[str, str]]:
        queue = ListQueue()
        queue.down = down
        return Webhooks(SECRET, offload=queue, on_payment_failed=ok), *request()

    return make


def _too_large() -> tuple[Webhooks, bytes, dict[str, str]]:
    return Webhooks(SECRET, max_body_bytes=64, on_payload=ok), *request()


CASES = [
    Case("ok", 200, _store_case(), ["idempotency store claim", "handler ok", "idempotency store complete"]),
    Case("duplicate", 200, _duplicate, ["idempotency store claim"]),
    Case("busy", 409, _busy, ["idempotency store claim"]),
    Case("invalid_signature", 403, _forged, typed=False),
    Case("invalid_payload", 400, _signed(b"[1]"), typed=False),
    Case("handler_error", 200, _handler_error,
         ["idempotency store claim", "handler fail", "idempotency store release"], error=True),
    Case("accepted_raw", 200, _drifted, ["handler ok"]),
    Case("store_unavailable", 503, _store_case(DownStore()), ["idempotency store claim"], error=True),
    Case("queued", 200, _queue(down=False)),
    Case("offload_unavailable", 503, _queue(down=True), error=True),
    Case("too_large", 413, _too_large, typed=False),
]  # fmt: skip


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("case", CASES, ids=[c.outcome for c in CASES])
def test_each_outcome_is_one_child_span_of_the_http_span(
    telemetry: Telemetry, case: Case, drive: str
) -> None:
    webhooks, body, headers = case.make()
    instrumented(telemetry, webhooks)
    tracer = telemetry.tracer_provider.get_tracer("framework")
    with tracer.start_as_current_span("POST /webhooks/commet", kind=SpanKind.SERVER) as http:
        response = deliver(webhooks, body, headers, drive)
    assert (response.outcome.value, response.status) == (case.outcome, case.status)

    (span,) = telemetry.named("process ")
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None and span.parent.span_id == http.get_span_context().span_id
    assert span.context.trace_id == http.get_span_context().trace_id
    attributes = dict(span.attributes or {})
    assert attributes["messaging.system"] == "commet"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["commet.outcome"] == case.outcome
    if case.typed:
        event_type = (
            "subscription.activated" if case.outcome == "accepted_raw" else "payment.failed"
        )
        assert span.name == f"process {event_type}"
        assert attributes["commet.event.type"] == event_type
        assert attributes["commet.event.id"] == attributes["messaging.message.id"] == event_id(body)
        assert attributes["commet.secret.position"] == 0
        assert attributes["commet.secret.fingerprint"] == webhooks._keys.fingerprint(0)
    else:
        assert span.name == "process commet"
        assert "commet.event.type" not in attributes and "commet.secret.position" not in attributes
    if case.error:
        assert span.status.status_code is StatusCode.ERROR
        assert attributes["error.type"] == case.outcome
    else:
        assert span.status.status_code is StatusCode.UNSET and "error.type" not in attributes

    children = [
        s for s in telemetry.finished() if s.parent and s.parent.span_id == span.context.span_id
    ]
    assert [c.name for c in sorted(children, key=lambda s: s.start_time or 0)] == case.children
    # The HTTP span is enriched, not duplicated: no HTTP attributes on ours.
    http_attributes = dict(telemetry.named("POST ")[0].attributes or {})
    assert http_attributes["commet.outcome"] == case.outcome
    assert not any(key.startswith("http.") for key in attributes)


@pytest.mark.parametrize("drive", DRIVES)
def test_a_raising_handler_is_recorded_on_its_span(telemetry: Telemetry, drive: str) -> None:
    webhooks, body, headers = _handler_error()
    instrumented(telemetry, webhooks)
    deliver(webhooks, body, headers, drive)
    (handler,) = telemetry.named("handler ")
    assert handler.status.status_code is StatusCode.ERROR
    assert dict(handler.attributes or {})["error.type"] == "ValueError"
    assert dict(handler.attributes or {})["commet.event.type"] == "payment.failed"
    (exception,) = [e for e in handler.events if e.name == "exception"]
    assert dict(exception.attributes or {})["exception.type"] == "ValueError"
    assert "handler failed on purpose" in str(dict(exception.attributes or {})["exception.message"])


def test_a_store_outage_is_recorded_on_the_store_span(telemetry: Telemetry) -> None:
    webhooks, body, headers = _store_case(DownStore())()
    instrumented(telemetry, webhooks)
    assert webhooks.handle_sync(body, headers).status == 503
    (claim,) = telemetry.named("idempotency store claim")
    assert claim.status.status_code is StatusCode.ERROR
    assert dict(claim.attributes or {})["commet.store.backend"] == "DownStore"
    assert any(e.name == "exception" for e in claim.events)


def test_spans_made_inside_a_handler_are_children_of_its_span(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")

    def calls_out(event: Any) -> None:
        with tracer.start_as_current_span("charge the card"):
            pass

    webhooks = Webhooks(SECRET, on_payment_failed=calls_out)
    instrumented(telemetry, webhooks)
    webhooks.handle_sync(*request())
    (handler,) = telemetry.named("handler ")
    (inner,) = telemetry.named("charge the card")
    assert inner.parent is not None and inner.parent.span_id == handler.context.span_id


def test_the_old_secret_of_a_rotation_is_named_by_position_and_fingerprint(
    telemetry: Telemetry,
) -> None:
    webhooks = Webhooks([SECRET, OLD_SECRET], on_payload=ok)
    instrumented(telemetry, webhooks)
    webhooks.handle_sync(*request(secret=OLD_SECRET))
    (span,) = telemetry.named("process ")
    attributes = dict(span.attributes or {})
    assert attributes["commet.secret.position"] == 1
    assert attributes["commet.secret.fingerprint"] == webhooks._keys.fingerprint(1)
    assert attributes["commet.secret.fingerprint"] != webhooks._keys.fingerprint(0)
    assert all(OLD_SECRET not in str(value) for value in attributes.values())


def test_the_trace_continues_in_the_worker_of_an_offloaded_delivery(telemetry: Telemetry) -> None:
    queue = ListQueue()
    receiver = Webhooks(SECRET, offload=queue, on_payment_failed=ok)
    instrumented(telemetry, receiver)
    body, headers = request()
    assert receiver.handle_sync(body, headers).outcome == "queued"
    (delivery,) = queue.items
    assert delivery.context["traceparent"].startswith("00-")  # W3C, through the wire form

    worker = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=ok)
    instrumented(telemetry, worker)
    with continue_trace(delivery):
        assert worker.handle_offloaded(delivery).outcome == "ok"
    received, processed = sorted(telemetry.named("process "), key=lambda s: s.start_time or 0)
    assert dict(received.attributes or {})["commet.outcome"] == "queued"
    assert processed.context.trace_id == received.context.trace_id
    assert processed.parent is not None and processed.parent.span_id == received.context.span_id
    assert dict(processed.attributes or {})["commet.outcome"] == "ok"


def test_continue_trace_without_a_context_changes_nothing(telemetry: Telemetry) -> None:
    before = trace.get_current_span()
    with continue_trace({}):
        assert trace.get_current_span() is before


@pytest.mark.parametrize("lookup", ["direct", "public context", "public span"])
def test_an_unsampled_http_span_makes_no_span_of_ours_but_its_context_travels(
    lookup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever way the current span is read (straight from OpenTelemetry's context
    variable, or through its public functions when that is not possible)."""
    import commet_webhooks.observability as observability

    found = {
        "direct": observability._span_lookup(),
        "public context": (observability._CurrentContext(), observability._span_lookup()[1]),
        "public span": (observability._CurrentSpan(), observability._CurrentSpan.KEY),
    }[lookup]
    monkeypatch.setattr(observability, "_span_lookup", lambda: found)
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    queue = ListQueue()
    followed = Webhooks(SECRET, offload=queue)
    asked = Webhooks(SECRET, on_payload=ok)
    from commet_webhooks.observability import instrument

    instrument(followed, tracer_provider=provider, metrics=False, prometheus=False)
    instrument(asked, tracer_provider=provider, metrics=False, prometheus=False,
               follow_parent_sampling=False)  # fmt: skip
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    with trace.use_span(unsampled):
        followed.handle_sync(*request())
        assert spans.get_finished_spans() == ()
        asked.handle_sync(*request())  # ALWAYS_ON, asked: a span
    (span,) = [s for s in spans.get_finished_spans() if s.name.startswith("process ")]
    assert span.context.trace_id == 0xABC
    # The parent's (unsampled) decision travels with the queued delivery.
    assert queue.items[0].context["traceparent"] == f"00-{0xABC:032x}-{0xDEF:016x}-00"
    # A sampled parent: ours is its child.
    with provider.get_tracer("framework").start_as_current_span("POST /hooks") as http:
        followed.handle_sync(*request())
    (ours,) = [s for s in spans.get_finished_spans() if s.name.startswith("process ") and s != span]
    assert ours.parent is not None and ours.parent.span_id == http.get_span_context().span_id
    provider.shutdown()


def test_tracing_sampled_off_records_nothing_and_answers_the_same() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=fail)
    from commet_webhooks.observability import instrument

    instrument(webhooks, tracer_provider=provider, metrics=False, prometheus=False)
    response = webhooks.handle_sync(*request())
    assert response.outcome == "handler_error" and spans.get_finished_spans() == ()
    # Every root is dropped: no trace is started, so none travels with a queued delivery.
    queue = ListQueue()
    receiver = Webhooks(SECRET, offload=queue)
    instrument(receiver, tracer_provider=provider, metrics=False, prometheus=False)
    assert receiver.handle_sync(*request()).outcome == "queued"
    assert queue.items[0].context == {} and spans.get_finished_spans() == ()
    provider.shutdown()


def test_the_current_span_is_read_as_opentelemetry_reads_it() -> None:
    """Every way of finding the current span (the direct read of OpenTelemetry's context
    variable, and the public fallbacks) agrees with ``trace.get_current_span()``: with no
    span, with spans attached and detached, in a new thread and in asyncio tasks."""
    import threading

    from opentelemetry import context

    from commet_webhooks.observability import _CurrentContext, _CurrentSpan, _span_lookup

    holder, key = _span_lookup()
    assert isinstance(holder, __import__("contextvars").ContextVar)  # the fast path is in use
    lookups = [(holder, key), (_CurrentContext(), key), (_CurrentSpan(), _CurrentSpan.KEY)]

    def current(lookup: tuple[Any, Any]) -> Any:
        found = lookup[0].get().get(lookup[1])
        return trace.INVALID_SPAN if found is None else found

    def check() -> None:
        expected = trace.get_current_span()
        assert all(current(lookup) is expected for lookup in lookups)

    check()  # no span
    outer = trace.NonRecordingSpan(
        trace.SpanContext(0x1, 0x2, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    inner = trace.NonRecordingSpan(
        trace.SpanContext(0x1, 0x3, is_remote=False, trace_flags=trace.TraceFlags(1))
    )
    first = context.attach(trace.set_span_in_context(outer))
    try:
        check()
        assert current(lookups[0]) is outer
        second = context.attach(trace.set_span_in_context(inner))
        check()
        assert current(lookups[0]) is inner
        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.append(current(lookups[0])))
        thread.start()
        thread.join()
        assert seen == [trace.INVALID_SPAN]  # a new thread starts with no span
        context.detach(second)
        check()

        async def in_task() -> Any:
            check()
            return current(lookups[0])

        async def tasks() -> list[Any]:
            return list(await asyncio.gather(in_task(), in_task()))

        assert asyncio.run(tasks()) == [outer, outer]  # tasks inherit the context
    finally:
        context.detach(first)
    check()
