"""Structured logs: delivery fields on every record, JSON lines, and nothing secret anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from observe_helpers import (
    OLD_SECRET,
    SECRET,
    DownStore,
    Telemetry,
    event_id,
    instrumented,
    request,
)
from prometheus_client import generate_latest

from commet_webhooks import MemoryStore, Webhooks
from commet_webhooks.observability import JsonFormatter, log_json
from commet_webhooks.testing import sample_event, sign, signed_request


def fail(event: Any) -> None:
    raise ValueError("handler failed on purpose")


def ok(event: Any) -> None:
    return None


class Records:
    """Every record logged during the test (``caplog.records`` of the call phase)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __iter__(self) -> Iterator[logging.LogRecord]:
        return iter(list(self._caplog.records))

    def __getitem__(self, index: int) -> logging.LogRecord:
        return self._caplog.records[index]


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Records:
    caplog.set_level(logging.DEBUG)
    return Records(caplog)


def summaries(records: Records) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "commet_webhooks.delivery"]


@pytest.mark.parametrize("drive", ["async", "sync"])
def test_one_summary_per_delivery_with_its_fields(
    telemetry: Telemetry, records: Records, drive: str
) -> None:
    webhooks = Webhooks(
        [SECRET, OLD_SECRET], idempotency_store=MemoryStore(), on_payment_failed=fail
    )
    instrumented(telemetry, webhooks)
    body, headers = request(secret=OLD_SECRET)
    if drive == "async":
        asyncio.run(webhooks.handle(body, headers))
    else:
        webhooks.handle_sync(body, headers)
    webhooks.handle_sync(body, {})  # unsigned
    first, second = summaries(records)
    assert first.levelno == logging.INFO  # a 200, with a warning body
    assert (first.event_id, first.event_type, first.outcome) == (
        event_id(body),
        "payment.failed",
        "handler_error",
    )  # type: ignore[attr-defined]
    assert (first.secret_position, first.secret_fingerprint) == (1, webhooks._keys.fingerprint(1))  # type: ignore[attr-defined]
    assert first.status == 200 and first.duration_ms > 0  # type: ignore[attr-defined]
    assert second.levelno == logging.WARNING and second.outcome == "invalid_signature"  # type: ignore[attr-defined]
    assert not hasattr(second, "event_id") and not hasattr(second, "secret_position")


def test_the_librarys_own_records_carry_what_is_known(
    telemetry: Telemetry, records: Records
) -> None:
    store = MemoryStore()
    webhooks = Webhooks(SECRET, idempotency_store=store, on_payment_failed=fail)
    instrumented(telemetry, webhooks)
    body, headers = request()
    webhooks.handle_sync(body, headers)  # "handler ... failed" (ERROR)
    webhooks.handle_sync(*request("payment.failed"))
    store.claim(event_id(body), "x")  # released above: claim it again elsewhere
    webhooks.handle_sync(body, headers)  # "... being processed elsewhere" (INFO)
    core = [r for r in records if r.name == "commet_webhooks"]
    failed = next(r for r in core if "failed for" in r.getMessage())
    busy = next(r for r in core if "processed elsewhere" in r.getMessage())
    for record in (failed, busy):
        assert record.event_id == event_id(body) and record.event_type == "payment.failed"  # type: ignore[attr-defined]
    # Records made before the signature was checked say nothing unverified.
    webhooks.handle_sync(body, {**headers, "X-Commet-Signature": "0" * 64})
    rejected = next(r for r in records if "invalid signature" in r.getMessage())
    assert not hasattr(rejected, "event_id") and not hasattr(rejected, "event_type")
    # Outside a delivery, nothing is added.
    logging.getLogger("commet_webhooks").warning("unrelated")
    assert not hasattr(records[-1], "event_id")


def test_log_json_is_one_line_per_record_with_the_fields(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    stream = io.StringIO()
    handler = log_json(stream=stream)
    webhooks = Webhooks(SECRET, idempotency_store=MemoryStore(), on_payment_failed=fail)
    instrumented(telemetry, webhooks)
    body, headers = request()
    webhooks.handle_sync(body, headers)
    root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    summary = next(line for line in lines if line["logger"] == "commet_webhooks.delivery")
    assert summary["event_id"] == event_id(body) and summary["outcome"] == "handler_error"
    assert summary["event_type"] == "payment.failed" and summary["level"] == "INFO"
    failure = next(line for line in lines if "failed for" in line["message"])
    assert failure["event_id"] == event_id(body) and "ValueError" in failure["exception"]
    assert isinstance(handler.formatter, JsonFormatter)


# ---------------------------------------------------------------------- leaks

MARKERS = ("LEAKCHECK", "BODYMARK")
LEAKY_SECRET = "whsec_" + "LEAKCHECK" + "_observability"
LEAKY_OLD_SECRET = "whsec_" + "LEAKCHECK" + "_observability_old"


def _body(event_type: str, **overrides: Any) -> dict[str, Any]:
    payload = sample_event(event_type, **overrides)
    payload["data"]["note"] = "BODYMARK" + "_customer_data"
    return payload


def test_no_secret_and_no_body_in_logs_spans_or_metrics(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    json_lines = io.StringIO()
    log_json(logging.DEBUG, stream=json_lines)

    store = MemoryStore()
    everything = Webhooks(
        [LEAKY_SECRET, LEAKY_OLD_SECRET],
        idempotency_store=store,
        on_invoice_created=fail,
        on_payload=ok,
    )
    outage = Webhooks(LEAKY_SECRET, idempotency_store=DownStore(), on_payload=ok)
    for webhooks in (everything, outage):
        instrumented(telemetry, webhooks)
    signed = signed_request(_body("payment.failed"), LEAKY_OLD_SECRET)
    assert b"BODYMARK" in signed[0]  # the marker is in what was signed and delivered
    garbage = b"[1, " + b'"BODYMARK"' + b"]"
    requests = [
        (everything, signed),
        (everything, signed),  # duplicate
        (everything, signed_request(_body("invoice.created"), LEAKY_SECRET)),  # handler error
        (
            everything,
            signed_request(_body("subscription.activated", invoice_total="29.00"), LEAKY_SECRET),
        ),
        (everything, signed_request(_body("brand.new"), LEAKY_SECRET)),
        (
            everything,
            (signed[0], {**signed[1], "X-Commet-Signature": sign(signed[0], "whsec_other")}),
        ),
        (everything, (garbage, {"X-Commet-Signature": sign(garbage, LEAKY_SECRET)})),
        (outage, signed_request(_body("payment.failed"), LEAKY_SECRET)),
    ]
    statuses = []
    for webhooks, (body, headers) in requests:
        statuses.append(webhooks.handle_sync(body, headers).status)
        statuses.append(asyncio.run(webhooks.handle(body, headers)).status)
    assert set(statuses) == {200, 403, 400, 503}

    texts = [caplog.text, json_lines.getvalue(), generate_latest(telemetry.registry).decode()]
    texts += [json.dumps(record.__dict__, default=str) for record in caplog.records]
    texts += [span.to_json() for span in telemetry.finished()]
    texts.append(str(telemetry.points()))
    assert len(telemetry.finished()) > 20 and "commet.event.id" in texts[-2]
    for text in texts:
        for marker in MARKERS:
            assert marker not in text, (
                f"{marker} leaked: {text[max(0, text.find(marker) - 300) :][:600]}"
            )


def test_the_filter_on_a_handler_gives_the_applications_records_the_fields(
    telemetry: Telemetry,
) -> None:
    from commet_webhooks.observability import DeliveryFields

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    keep.addFilter(DeliveryFields())
    app_logger = logging.getLogger("myapp.billing")
    app_logger.addHandler(keep)
    app_logger.setLevel(logging.INFO)
    try:
        webhooks = Webhooks(
            SECRET, on_payment_failed=lambda event: app_logger.info("dunning %s", event.id)
        )
        instrumented(telemetry, webhooks)
        body, headers = request()
        webhooks.handle_sync(body, headers)
        app_logger.info("between deliveries")
    finally:
        app_logger.removeHandler(keep)
    during, after = seen
    assert during.event_id == event_id(body) and during.event_type == "payment.failed"  # type: ignore[attr-defined]
    assert not hasattr(after, "event_id")
