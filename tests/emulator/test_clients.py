"""Clients against a running emulator: the official Python SDK (``commet-sdk``) and ours.

Each walks what an integration does: create a customer, subscribe, pay the checkout,
read the active subscription and a feature's access, track usage, register a webhook
endpoint and send it a test, advance the test clock; every answer decodes into the
client's own models, and the webhooks arrive signed with the secret the API returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import commet
import commet._http
import pytest
from commet import types as sdk_types

from commet_webhooks import Commet, verify
from commet_webhooks._api_models import Subscription, UsageFeatureAccess
from emulator.emulator_helpers import API_KEY, Emulator, Receiver


@pytest.fixture
def sdk(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[commet.Commet]:
    """The official SDK with its host (a module constant) pointed at the emulator."""
    monkeypatch.setattr(commet._http, "_BASE_URL", emulator.url)
    client = commet.Commet(api_key=API_KEY, telemetry=False, retries=0)
    try:
        yield client
    finally:
        client.close()


def _pay(emulator: Emulator, subscription_id: str) -> None:
    emulator.api("POST", f"/api/emulator/subscriptions/{subscription_id}/pay")


def test_the_official_sdk_walks_against_the_emulator(
    sdk: commet.Commet, emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    hook = sdk.webhooks.create(url=url, events=["subscription.activated", "payment.received"])
    assert isinstance(hook, sdk_types.CreatedWebhook) and hook.secret_key.startswith("whsec_")
    listed = sdk.webhooks.list()
    assert [w.id for w in listed.data] == [hook.id] and listed.has_more is False

    customer = sdk.customers.create(email="ada@example.com", external_id="user_ada")
    assert isinstance(customer, sdk_types.Customer) and customer.external_id == "user_ada"
    created = sdk.subscriptions.create(customer_id="user_ada", plan_id="plan_pro")
    assert created.status == "pending_payment" and created.checkout_url
    _pay(emulator, created.id)

    active = sdk.subscriptions.get_active(customer_id="user_ada")
    assert isinstance(active, sdk_types.Subscription)
    assert (active.id, active.status, active.plan.id) == (created.id, "active", "plan_pro")
    assert active.current_period is not None
    access = sdk.feature_access.get("advanced_analytics", customer_id="user_ada")
    assert access.allowed is True
    event = sdk.usage.track(
        feature_code="api_calls", customer_id="user_ada", value=42, event_id="evt-1"
    )
    assert isinstance(event, sdk_types.UsageEvent) and event.value == 42
    usage = sdk.feature_access.get("api_calls", customer_id="user_ada")
    assert usage.type == "usage" and usage.consumption.units_used == 42

    tested = sdk.webhooks.test(hook.id)
    assert tested.success is True
    run = sdk.test_clock.advance(advance_days=35)
    assert run.status == "completed" and run.items
    clock = sdk.test_clock.get()
    assert clock.is_active is True and clock.latest_run is not None

    # activation, first payment, the test send, and the renewal's payment
    requests = recorder.wait_for(4)
    kinds = [r.headers["x-commet-event"] for r in requests]
    assert kinds.count("subscription.activated") >= 1 and kinds.count("payment.received") >= 2
    for request in requests:
        assert verify(request.body, request.headers["x-commet-signature"], hook.secret_key)
        assert json.loads(request.body)["apiVersion"] == "2026-08-27"


def test_our_client_walks_against_the_emulator(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    hook = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    emulator.api("POST", "/api/v1/customers", json={"externalId": "u7", "email": "u7@example.com"})
    sub = emulator.api(
        "POST", "/api/v1/subscriptions", json={"customerId": "u7", "planId": "plan_starter"}
    )
    with Commet(api_key=API_KEY, base_url=emulator.url, retries=0) as client:
        assert client.subscriptions.get_active(customer_id="u7") is not None
        _pay(emulator, sub["id"])
        active = client.subscriptions.get_active(customer_id="u7")
        assert isinstance(active, Subscription) and active.is_active
        assert active.plan.id == "plan_starter" and active.current_period is not None
        calls = client.feature_access.get("api_calls", customer_id="u7")
        assert isinstance(calls, UsageFeatureAccess) and calls.allowed
        client.usage.track(feature_code="api_calls", customer_id="u7", value=1000, event_id="x")
        client.usage.track(feature_code="api_calls", customer_id="u7", value=1000, event_id="x")
        spent = client.feature_access.get("api_calls", customer_id="u7")
        assert spent.allowed is False  # 1,000 included, no overage: the repeat did not count
        listing = client.feature_access.list(customer_id="u7")
        assert {f.code for f in listing.data} >= {"api_calls", "advanced_analytics"}
    for request in recorder.wait_for(3):
        assert verify(request.body, request.headers["x-commet-signature"], hook["secretKey"])
