"""commet_webhooks.testing: samples and signed requests users build their tests on."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from commet_webhooks import PaymentFailed, Webhooks, parse_event, verify
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import API_VERSION, sample_data, sample_event, signed_request

SECRET = "whsec_testing_helpers"


def test_every_event_type_has_a_distinct_realistic_sample() -> None:
    for name, spec in EVENT_TYPES.items():
        first, second = sample_event(name), sample_event(name)
        assert first["event"] == name and first["apiVersion"] == API_VERSION
        assert first["id"] != second["id"] and first["id"].startswith("whev_")
        event = parse_event(json.dumps(first))
        assert isinstance(event, spec.event_class)
        for key, value in first["data"].items():
            if isinstance(value, int) and not isinstance(value, bool):
                assert value >= 0, key  # amounts are non-negative cents


def test_overrides_snake_case_camel_case_envelope_and_data() -> None:
    moment = datetime(2026, 3, 1, tzinfo=timezone.utc)
    payload = sample_event(
        "payment.failed",
        failure_code="expired_card",
        customerId="cus_9",
        id="whev_fixed",
        timestamp=moment,
        organization_id="org_9",
        mode="live",
    )
    assert payload["data"]["failureCode"] == "expired_card"
    assert payload["data"]["customerId"] == "cus_9"
    assert payload["id"] == "whev_fixed" and payload["organizationId"] == "org_9"
    assert payload["timestamp"] == "2026-03-01T00:00:00.000Z" and payload["mode"] == "live"
    event = parse_event(json.dumps(payload))
    assert isinstance(event, PaymentFailed) and event.data.failure_code == "expired_card"
    assert sample_event("payment.failed", data={"x": 1})["data"] == {"x": 1}
    assert sample_data("invoice.created", total=1)["total"] == 1
    assert sample_data("unmodelled.type", foo_bar=2) == {"fooBar": 2}


def test_signed_request_headers_match_commet() -> None:
    payload = sample_event("subscription.canceled")
    body, headers = signed_request(payload, SECRET)
    assert json.loads(body) == payload
    assert verify(body, headers["X-Commet-Signature"], SECRET)
    assert headers["X-Commet-Event"] == "subscription.canceled"
    assert headers["X-Commet-Event-Id"] == payload["id"]
    assert headers["X-Commet-Timestamp"] == payload["timestamp"]
    assert headers["Content-Type"] == "application/json"
    raw_body, raw_headers = signed_request(b"\x00not json", SECRET, headers={"X-Extra": "1"})
    assert raw_body == b"\x00not json" and raw_headers["X-Extra"] == "1"
    assert "X-Commet-Event" not in raw_headers
    assert Webhooks(SECRET).handle_sync(body, headers).status == 200
