"""The billing simulation: lifecycle, state API after each step, consistent typed payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from commet_webhooks import (
    InvoiceCreated,
    PaymentFailed,
    PaymentReceived,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionUpdated,
    WebhookEvent,
    construct_event,
    parse_event,
)
from commet_webhooks.emulator import PlanCatalogError, create_app
from commet_webhooks.events import EVENT_TYPES
from emulator.emulator_helpers import Emulator, Receiver

CUSTOMER = "user_42"


def act(emulator: Emulator, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """Call a simulation route; return the whole wrapper (data + eventIds)."""
    response = emulator.client.request(method, path, json=body)
    payload: dict[str, Any] = response.json()
    assert response.is_success and payload["success"], payload
    return payload


def events_of(emulator: Emulator, ids: list[str]) -> list[WebhookEvent]:
    """The stored envelopes of ``ids`` parsed with the public parser, in emission order."""
    stored = {e["id"]: e for e in emulator.api("GET", "/api/emulator/events")}
    return [parse_event(json.dumps(stored[i]["payload"])) for i in ids]


def pick(events: list[WebhookEvent], kind: type[Any]) -> Any:
    """The one event of class ``kind`` among ``events``."""
    (found,) = [e for e in events if isinstance(e, kind)]
    return found


def active(emulator: Emulator, customer: str = CUSTOMER) -> Any:
    return emulator.api("GET", "/api/subscriptions/active", params={"customerId": customer})


def feature(emulator: Emulator, code: str, customer: str = CUSTOMER) -> dict[str, Any]:
    result: dict[str, Any] = emulator.api(
        "GET", f"/api/features/{code}", params={"customerId": customer}
    )
    return result


def test_lifecycle_payloads_and_state(emulator: Emulator, receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    endpoint = emulator.endpoint(url)
    act(emulator, "POST", "/api/emulator/customers", {"id": CUSTOMER, "email": "ada@example.com"})
    assert active(emulator) is None
    assert feature(emulator, "advanced_analytics")["allowed"] is False

    # create: pending payment, no access yet
    created = act(
        emulator, "POST", "/api/emulator/subscriptions",
        {"customerId": CUSTOMER, "planId": "plan_starter"},
    )  # fmt: skip
    sub_id = created["data"]["id"]
    ev_created, ev_checkout = events_of(emulator, created["eventIds"])
    assert ev_checkout.event == "checkout.ready" and ev_checkout.data.invoice_total == 900
    assert isinstance(ev_created, SubscriptionCreated)
    assert ev_created.data.subscription_id == sub_id
    assert ev_created.data.customer_id == CUSTOMER
    assert (ev_created.data.plan_id, ev_created.data.plan_name) == ("plan_starter", "Starter")
    assert ev_created.data.status == "pending_payment"
    state = active(emulator)
    assert state["id"] == sub_id and state["status"] == "pending_payment"
    assert feature(emulator, "api_calls")["allowed"] is False

    # pay: active, first invoice
    paid = act(emulator, "POST", f"/api/emulator/subscriptions/{sub_id}/pay")
    paid_events = events_of(emulator, paid["eventIds"])
    assert [e.event for e in paid_events] == [
        "payment.received", "subscription.activated", "payment_method.attached",
        "customer.state_changed",
    ]  # fmt: skip
    ev_activated = pick(paid_events, SubscriptionActivated)
    assert ev_activated.data.invoice_total == 900 and ev_activated.data.invoice_currency == "USD"
    assert ev_activated.data.invoice_number == "INV-0001" == ev_checkout.data.invoice_number
    state = active(emulator)
    assert state["status"] == "active"
    assert state["plan"] == {
        "id": "plan_starter", "name": "Starter", "basePrice": 900, "billingInterval": "monthly",
    }  # fmt: skip
    period_end = ev_activated.data.current_period_end
    assert period_end is not None and ev_activated.data.current_period_start is not None
    assert state["currentPeriod"]["end"] == paid["data"]["currentPeriod"]["end"]
    assert 28 <= state["currentPeriod"]["daysRemaining"] <= 31
    starter_analytics = feature(emulator, "advanced_analytics")
    assert starter_analytics["allowed"] is False and starter_analytics["enabled"] is False
    calls = feature(emulator, "api_calls")
    assert calls["allowed"] is True and calls["included"] == 1000 and calls["remaining"] == 1000

    # change plan: prorated over the (almost whole) remaining period
    changed = act(
        emulator, "POST", f"/api/emulator/subscriptions/{sub_id}/change-plan",
        {"planId": "plan_pro"},
    )  # fmt: skip
    ev_changed = pick(events_of(emulator, changed["eventIds"]), SubscriptionPlanChanged)
    assert (ev_changed.data.previous_plan.id, ev_changed.data.previous_plan.name) == (
        "plan_starter", "Starter",
    )  # fmt: skip
    assert (ev_changed.data.current_plan.id, ev_changed.data.current_plan.name) == (
        "plan_pro",
        "Pro",
    )
    credit, charge = ev_changed.data.credit, ev_changed.data.charge
    assert credit is not None and charge is not None
    assert 0 < credit <= 900 and 0 < charge <= 2900
    assert ev_changed.data.total_charged == charge - credit
    assert active(emulator)["plan"]["id"] == "plan_pro"
    assert feature(emulator, "advanced_analytics")["allowed"] is True

    # failed renewal: invoice.created, payment.failed, subscription.past_due; past_due is a
    # grace window on the platform: access continues while dunning retries
    failed = act(emulator, "POST", f"/api/emulator/subscriptions/{sub_id}/renew", {"fail": True})
    inv_failed, pay_failed, past_due, _ = events_of(emulator, failed["eventIds"])
    assert isinstance(inv_failed, InvoiceCreated) and isinstance(pay_failed, PaymentFailed)
    assert past_due.event == "subscription.past_due"
    assert inv_failed.data.invoice_number == "INV-0002" and inv_failed.data.total == 2900
    assert inv_failed.data.period_start == period_end
    assert pay_failed.data.invoice_id == inv_failed.data.invoice_id
    assert pay_failed.data.invoice_number == "INV-0002"
    assert active(emulator)["status"] == "past_due"
    assert feature(emulator, "advanced_analytics")["allowed"] is True

    # renewing while past_due charges the open invoice: no new invoice, same period
    renewed = act(emulator, "POST", f"/api/emulator/subscriptions/{sub_id}/renew", {})
    renewed_events = events_of(emulator, renewed["eventIds"])
    assert [e.event for e in renewed_events] == [
        "payment.received", "payment.recovered", "customer.state_changed",
    ]  # fmt: skip
    received = pick(renewed_events, PaymentReceived)
    assert received.data.invoice_id == inv_failed.data.invoice_id
    assert received.data.invoice_number == "INV-0002"
    assert received.data.invoice_total == received.data.gross_amount == 2900
    assert 0 < received.data.org_net_amount < 2900
    assert received.data.customer_email == "ada@example.com"
    state = active(emulator)
    assert state["status"] == "active"
    assert state["currentPeriod"]["start"] == inv_failed.raw["data"]["periodStart"]
    assert state["currentPeriod"]["end"] == inv_failed.raw["data"]["periodEnd"]

    # scheduled cancellation via PATCH: subscription.updated, still active
    updated = act(
        emulator, "PATCH", f"/api/emulator/subscriptions/{sub_id}", {"cancelAtPeriodEnd": True}
    )
    ev_updated = pick(events_of(emulator, updated["eventIds"]), SubscriptionUpdated)
    assert isinstance(ev_updated, SubscriptionUpdated)
    assert ev_updated.data.status == "active" and ev_updated.data.canceled_at is not None
    assert ev_updated.raw["data"]["endDate"] == state["currentPeriod"]["end"]

    # cancel: canceled, no active subscription, no access
    canceled = act(
        emulator, "POST", f"/api/emulator/subscriptions/{sub_id}/cancel", {"reason": "too_pricey"}
    )
    ev_canceled = pick(events_of(emulator, canceled["eventIds"]), SubscriptionCanceled)
    assert ev_canceled.data.cancel_reason == "too_pricey" and ev_canceled.data.status == "canceled"
    assert active(emulator) is None
    assert feature(emulator, "advanced_analytics")["allowed"] is False

    # every event of the lifecycle reached the receiver, verifiable and typed
    all_ids = [
        i for step in (created, paid, changed, failed, renewed, updated, canceled)
        for i in step["eventIds"]
    ]  # fmt: skip
    requests = recorder.wait_for(len(all_ids) + 1)  # and customer.created
    seen = {}
    for request in requests:
        if request.headers["x-commet-event"] == "customer.created":
            assert json.loads(request.body)["data"]["externalId"] == CUSTOMER
            continue
        event = construct_event(
            request.body, request.headers["x-commet-signature"], endpoint["secret"]
        )
        assert type(event) is EVENT_TYPES[event.event].event_class
        assert event.raw["data"]["customerId"] == CUSTOMER
        seen[event.id] = event.event
    assert set(seen) == set(all_ids)
    assert {
        "subscription.created", "checkout.ready", "subscription.activated", "payment.received",
        "subscription.plan_changed", "invoice.created", "payment.failed", "subscription.past_due",
        "payment.recovered", "subscription.updated", "subscription.canceled",
        "customer.state_changed",
    } <= set(seen.values())  # fmt: skip


def test_renewals_while_past_due_retry_the_open_invoice(emulator: Emulator) -> None:
    emulator.api("POST", "/api/emulator/customers", json={"id": CUSTOMER})
    sub = emulator.api(
        "POST",
        "/api/emulator/subscriptions",
        json={"customerId": CUSTOMER, "planId": "plan_starter"},
    )
    path = f"/api/emulator/subscriptions/{sub['id']}"
    emulator.api("POST", path + "/pay")
    period = active(emulator)["currentPeriod"]

    first = act(emulator, "POST", path + "/renew", {"fail": True})
    invoice, failed, _, _ = events_of(emulator, first["eventIds"])
    assert isinstance(invoice, InvoiceCreated) and isinstance(failed, PaymentFailed)

    again = act(emulator, "POST", path + "/renew", {"fail": True})
    (failed_again,) = events_of(emulator, again["eventIds"])  # no second invoice.created
    assert isinstance(failed_again, PaymentFailed)
    assert failed_again.data.invoice_id == invoice.data.invoice_id
    assert active(emulator)["status"] == "past_due"
    assert active(emulator)["currentPeriod"] == period

    paid = act(emulator, "POST", path + "/renew", {"fail": False})
    received = pick(events_of(emulator, paid["eventIds"]), PaymentReceived)
    assert received.data.invoice_id == invoice.data.invoice_id
    state = active(emulator)
    assert state["status"] == "active"
    assert state["currentPeriod"]["start"] == invoice.raw["data"]["periodStart"] == period["end"]

    # the next renewal bills the following period on a new invoice
    following = act(emulator, "POST", path + "/renew", {})
    next_invoice, *_ = events_of(emulator, following["eventIds"])
    assert isinstance(next_invoice, InvoiceCreated)
    assert next_invoice.data.invoice_id != invoice.data.invoice_id
    assert next_invoice.raw["data"]["periodStart"] == invoice.raw["data"]["periodEnd"]


def test_every_generated_sample_parses_into_its_class(emulator: Emulator) -> None:
    for name, spec in EVENT_TYPES.items():
        event_id = emulator.api("POST", "/api/emulator/events", json={"event": name})["id"]
        (event,) = events_of(emulator, [event_id])
        assert type(event) is spec.event_class


def test_usage_makes_metered_features_run_out(emulator: Emulator) -> None:
    act(emulator, "POST", "/api/emulator/customers", {"id": CUSTOMER})
    sub = act(
        emulator, "POST", "/api/emulator/subscriptions",
        {"customerId": CUSTOMER, "planId": "plan_starter"},
    )["data"]  # fmt: skip
    act(emulator, "POST", f"/api/emulator/subscriptions/{sub['id']}/pay")
    act(emulator, "POST", "/api/emulator/usage",
        {"customerId": CUSTOMER, "feature": "api_calls", "value": 1000})  # fmt: skip
    calls = feature(emulator, "api_calls")
    assert calls["allowed"] is False and calls["current"] == 1000 and calls["remaining"] == 0
    state = active(emulator)
    usage = next(f for f in state["features"] if f["code"] == "api_calls")["usage"]
    assert usage["current"] == 1000


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("POST", "/api/emulator/customers", {}, 400, "id"),
        ("POST", "/api/emulator/customers", {"id": ""}, 400, "id"),
        ("POST", "/api/emulator/subscriptions", {"customerId": "ghost", "planId": "plan_pro"},
         400, "customerId"),
        ("POST", "/api/emulator/subscriptions", {"customerId": CUSTOMER, "planId": "plan_x"},
         400, "planId"),
        ("POST", "/api/emulator/subscriptions/sub_nope/pay", None, 404, None),
        ("POST", "/api/emulator/usage", {"customerId": CUSTOMER, "feature": "api_calls",
                                         "value": -1}, 400, "value"),
        ("PATCH", "/api/emulator/subscriptions/sub_nope", {"status": "sleeping"}, 400, "status"),
    ],
)  # fmt: skip
def test_bad_simulation_input(
    emulator: Emulator, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    act(emulator, "POST", "/api/emulator/customers", {"id": CUSTOMER})
    response = emulator.client.request(method, path, json=body)
    assert response.status_code == status
    payload = response.json()
    assert payload["success"] is False
    if field is not None:
        assert payload["code"] == "validation_error"
        assert payload["details"][0]["field"] == field


def test_wrong_state_transitions_are_409(emulator: Emulator) -> None:
    act(emulator, "POST", "/api/emulator/customers", {"id": CUSTOMER})
    sub = act(
        emulator, "POST", "/api/emulator/subscriptions",
        {"customerId": CUSTOMER, "planId": "plan_pro"},
    )["data"]  # fmt: skip
    for path, body in (("renew", {}), ("change-plan", {"planId": "plan_starter"})):
        response = emulator.client.post(
            f"/api/emulator/subscriptions/{sub['id']}/{path}", json=body
        )
        assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    again = emulator.client.post(
        "/api/emulator/subscriptions", json={"customerId": CUSTOMER, "planId": "plan_pro"}
    )
    assert again.status_code == 409
    duplicate = emulator.client.post("/api/emulator/customers", json={"id": CUSTOMER})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "conflict"
    act(emulator, "POST", f"/api/emulator/subscriptions/{sub['id']}/cancel")
    response = emulator.client.post(f"/api/emulator/subscriptions/{sub['id']}/cancel")
    assert response.status_code == 409
    empty_patch = emulator.client.patch(f"/api/emulator/subscriptions/{sub['id']}", json={})
    assert empty_patch.status_code in (400, 409)


def test_state_api_needs_a_customer_and_a_known_feature(emulator: Emulator) -> None:
    missing = emulator.client.get("/api/subscriptions/active")
    assert missing.status_code == 400
    assert missing.json()["details"] == [
        {"field": "customerId", "message": "query parameter is required"}
    ]
    unknown = emulator.client.get("/api/features/teleport", params={"customerId": CUSTOMER})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_plan_catalog_from_a_file(make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    catalog = tmp_path / "plans.json"
    catalog.write_text(
        json.dumps(
            {
                "plans": [
                    {
                        "id": "plan_team", "name": "Team", "basePrice": 4900,
                        "billingInterval": "yearly",
                        "features": [{"code": "sso", "name": "SSO", "type": "boolean"}],
                    }
                ]
            }
        )
    )  # fmt: skip
    emulator = make_emulator(plans_file=str(catalog))
    assert [p["id"] for p in emulator.api("GET", "/api/emulator/plans")] == ["plan_team"]
    act(emulator, "POST", "/api/emulator/customers", {"id": CUSTOMER})
    sub = act(
        emulator, "POST", "/api/emulator/subscriptions",
        {"customerId": CUSTOMER, "planId": "plan_team"},
    )["data"]  # fmt: skip
    paid = act(emulator, "POST", f"/api/emulator/subscriptions/{sub['id']}/pay")
    activated = pick(events_of(emulator, paid["eventIds"]), SubscriptionActivated)
    assert isinstance(activated, SubscriptionActivated) and activated.data.invoice_total == 4900
    start, end = activated.data.current_period_start, activated.data.current_period_end
    assert start is not None and end is not None and 365 <= (end - start).days <= 366
    assert feature(emulator, "sso")["allowed"] is True


def test_bad_plan_catalog_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "plans.json"
    bad.write_text('[{"id": "p", "name": "P"}]')
    with pytest.raises(PlanCatalogError, match="basePrice"):
        create_app(db_path=str(tmp_path / "x.db"), api_key="ck_x", plans_file=str(bad))
    with pytest.raises(PlanCatalogError, match="cannot read"):
        create_app(db_path=str(tmp_path / "x.db"), api_key="ck_x", plans_file=str(tmp_path / "no"))
