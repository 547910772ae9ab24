"""A year on the test clock emits every one of the 66 event types, each valid against
Commet's published schema and delivered signed."""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter
from typing import Any

import jsonschema
import pytest

from commet_webhooks import verify
from commet_webhooks.events import EVENT_TYPES
from emulator.emulator_helpers import Emulator, Receiver, wait_until
from emulator.year import call, run_year


@pytest.fixture(scope="module")
def published_schema() -> dict[str, Any]:
    """The webhook contract as the official SDK ships it."""
    text = (importlib.resources.files("commet") / "docs" / "webhooks.openapi.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def validator_for(schema: dict[str, Any], event_type: str) -> jsonschema.Draft202012Validator:
    pointer = f"#/webhooks/{event_type}/post/requestBody/content/application~1json/schema"
    return jsonschema.Draft202012Validator({**schema, "$ref": pointer})


def test_a_year_emits_all_66_types_valid_and_signed(
    emulator: Emulator, receiver: tuple[Receiver, str], published_schema: dict[str, Any]
) -> None:
    recorder, url = receiver
    endpoint = call(emulator, "POST", "/api/v1/webhooks", {"url": url, "events": list(EVENT_TYPES)})
    assert len(EVENT_TYPES) == 66

    run_year(emulator)

    counts = call(emulator, "GET", "/api/emulator/event-counts")
    missing = sorted(set(EVENT_TYPES) - set(counts))
    assert not missing, f"never emitted: {missing}"
    total = sum(counts.values())
    requests = recorder.wait_for(total, timeout=60)

    received: Counter[str] = Counter()
    invalid: dict[str, list[str]] = {}
    for request in requests:
        assert verify(request.body, request.headers["x-commet-signature"], endpoint["secretKey"])
        envelope = json.loads(request.body)
        validator = validator_for(published_schema, envelope["event"])
        for error in validator.iter_errors(envelope):
            path = "/".join(str(p) for p in error.absolute_path)
            invalid.setdefault(envelope["event"], []).append(f"{path}: {error.message}")
        assert request.headers["x-commet-event"] == envelope["event"]
        received[envelope["event"]] += 1
    assert not invalid, {name: sorted(set(errors))[:4] for name, errors in invalid.items()}
    assert dict(received) == counts
    wait_until(
        lambda: not emulator.api("GET", "/api/emulator/deliveries", params={"status": "pending"}),
        what="no pending delivery",
    )


def test_the_clock_runs_what_falls_due_in_order(emulator: Emulator) -> None:
    call(emulator, "POST", "/api/v1/customers", {"externalId": "u1", "email": "u1@example.com"})
    sub = call(emulator, "POST", "/api/v1/subscriptions",
               {"customerId": "u1", "planId": "plan_starter", "customTrialDays": 10})  # fmt: skip
    call(emulator, "POST", f"/api/emulator/subscriptions/{sub['id']}/pay")
    before = call(emulator, "GET", "/api/v1/test-clock")
    assert before["object"] == "test_clock" and before["isActive"] is False

    run = call(emulator, "POST", "/api/v1/test-clock", {"advanceDays": 75})
    assert run["object"] == "test_clock_run" and run["status"] == "completed"
    # the trial's end and two renewals, each a billing cycle, in time order
    cycles = [item for item in run["items"] if item["kind"] == "billing_cycle"]
    assert len(cycles) == 3
    assert [c["dueAt"] for c in cycles] == sorted(c["dueAt"] for c in cycles)

    events = [e["event"] for e in reversed(emulator.api("GET", "/api/emulator/events"))]
    expected_order = [
        "trial.will_end", "trial.expired", "invoice.created", "payment.received",
        "invoice.upcoming", "invoice.created", "payment.received",
    ]  # fmt: skip
    positions = [events.index(name) for name in expected_order[:4]]
    assert positions == sorted(positions)
    after = call(emulator, "GET", "/api/v1/test-clock")
    assert after["isActive"] is True and after["latestRun"]["id"] == run["id"]
    state = call(emulator, "GET", f"/api/v1/subscriptions/{sub['id']}")
    assert state["status"] == "active"
    assert state["currentPeriod"]["start"] > before["now"]
