"""The platform's v1 wire: envelope, lists, errors, request ids, versions, idempotency,
legacy deprecation headers, and the webhook endpoint resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from commet_webhooks import verify
from commet_webhooks._wire import API_VERSION
from emulator.emulator_helpers import API_KEY, Emulator, Receiver


def test_answers_carry_the_envelope_a_request_id_and_the_version(emulator: Emulator) -> None:
    response = emulator.client.get("/api/v1/plans")
    body = response.json()
    assert response.status_code == 200 and body["success"] is True
    assert body["data"]["object"] == "list" and body["data"]["hasMore"] is False
    assert {p["id"] for p in body["data"]["data"]} >= {"plan_starter", "plan_pro"}
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["commet-version"] == API_VERSION
    again = emulator.client.get("/api/v1/plans")
    assert again.headers["x-request-id"] != response.headers["x-request-id"]


def test_commet_version_is_honoured_and_echoed(emulator: Emulator) -> None:
    older = emulator.client.get("/api/v1/plans", headers={"Commet-Version": "2026-01-01"})
    assert older.status_code == 200 and older.headers["commet-version"] == "2026-01-01"
    for bad in ("yesterday", "2099-01-01"):
        response = emulator.client.get("/api/v1/plans", headers={"Commet-Version": bad})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_api_version"


def test_errors_have_the_platform_shape(emulator: Emulator) -> None:
    response = emulator.client.post("/api/v1/customers", json={"email": "not an email"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param", "details", "doc_url"}
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "validation_error", "email",
    )  # fmt: skip
    assert error["doc_url"].endswith("/validation_error")
    missing = emulator.client.get("/api/v1/subscriptions/sub_nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    route = emulator.client.get("/api/v1/nothing-here")
    assert route.status_code == 404 and route.json()["error"]["code"] == "not_found"
    garbage = emulator.client.post(
        "/api/v1/customers", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
    assert "x-request-id" in garbage.headers
    unauthorized = emulator.client.get("/api/v1/plans", headers={"x-api-key": "ck_wrong"})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["type"] == "authentication_error"


def test_a_bearer_key_is_accepted_too(emulator: Emulator) -> None:
    response = emulator.client.get(
        "/api/v1/plans", headers={"x-api-key": "", "authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200


def test_idempotency_key_replays_a_write_and_refuses_a_different_one(emulator: Emulator) -> None:
    key = {"Idempotency-Key": "create-ada-1"}
    body = {"externalId": "ada", "email": "ada@example.com"}
    first = emulator.client.post("/api/v1/customers", json=body, headers=key)
    second = emulator.client.post("/api/v1/customers", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    listed = emulator.client.get("/api/v1/customers").json()["data"]["data"]
    assert len(listed) == 1  # created once
    other = emulator.client.post(
        "/api/v1/customers", json={**body, "email": "b@example.com"}, headers=key
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_mismatch"
    events = emulator.api("GET", "/api/emulator/events", params={"event": "customer.created"})
    assert len(events) == 1


def test_legacy_paths_work_with_deprecation_headers(emulator: Emulator) -> None:
    response = emulator.client.get("/api/webhooks")
    assert response.status_code == 200 and response.json() == {"success": True, "data": []}
    assert response.headers["deprecation"] == "true"
    assert response.headers["sunset"].endswith("GMT")
    assert response.headers["link"] == '</api/v1/webhooks>; rel="successor-version"'
    feature = emulator.client.get("/api/features/api_calls", params={"customerId": "nobody"})
    assert feature.headers["link"].startswith("</api/v1/feature-access/")
    assert "deprecation" not in emulator.client.get("/api/v1/plans").headers
    assert "deprecation" not in emulator.client.get("/api/emulator/plans").headers


def test_webhook_endpoints_have_the_platform_shape(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    created = emulator.api(
        "POST",
        "/api/v1/webhooks",
        json={"url": url, "events": ["payment.failed"], "description": "billing",
              "apiVersion": "2026-05-25"},
    )  # fmt: skip
    assert created["object"] == "webhook" and created["isActive"] is True
    assert created["secretKey"].startswith("whsec_")
    assert (created["description"], created["apiVersion"]) == ("billing", "2026-05-25")
    path = f"/api/v1/webhooks/{created['id']}"
    read = emulator.api("GET", path)
    assert "secretKey" not in read and "secret" not in read
    assert {k: v for k, v in created.items() if k != "secretKey"} == read

    # the pinned version is stamped in the envelopes this endpoint receives
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    (request,) = recorder.wait_for(1)
    assert json.loads(request.body)["apiVersion"] == "2026-05-25"
    assert verify(request.body, request.headers["x-commet-signature"], created["secretKey"])

    updated = emulator.api(
        "PATCH", path, json={"events": ["payment.failed", "invoice.created"], "isActive": False}
    )
    assert updated["isActive"] is False and updated["events"][1] == "invoice.created"
    emulator.api("PATCH", path, json={"isActive": True})

    tested = emulator.api("POST", path + "/test")
    assert tested["object"] == "webhook_delivery" and tested["success"] is True
    (_, test_request) = recorder.wait_for(2)
    assert test_request.headers["x-commet-event"] == "payment.failed"
    assert verify(
        test_request.body, test_request.headers["x-commet-signature"], created["secretKey"]
    )

    deleted = emulator.api("DELETE", path)
    assert deleted == {"id": created["id"], "deleted": True, "object": "webhook", "livemode": False}
    assert emulator.client.get(path).status_code == 404


def test_a_test_send_to_a_failing_receiver_says_so_and_is_not_retried(
    emulator: Emulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.fail_next = 10
    created = emulator.api("POST", "/api/v1/webhooks", json={"url": url, "events": ["*"]})
    tested = emulator.api("POST", f"/api/v1/webhooks/{created['id']}/test")
    assert tested["success"] is False
    (delivery,) = emulator.deliveries()
    assert delivery["status"] == "failed" and len(delivery["attempts"]) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "http://example.com/hook", "events": ["*"]}, "url"),
        ({"url": "http://127.0.0.1/h\r\nX: y", "events": ["*"]}, "url"),
        ({"url": "https://example.com/hook", "events": []}, "events"),
        ({"url": "https://example.com/hook", "events": ["not an event"]}, "events[0]"),
        ({"url": "https://example.com/hook", "events": ["*"], "apiVersion": "v2"}, "apiVersion"),
    ],
)
def test_bad_webhook_input(emulator: Emulator, body: dict[str, Any], param: str) -> None:
    response = emulator.client.post("/api/v1/webhooks", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_lists_page_with_cursors(emulator: Emulator) -> None:
    for n in range(5):
        emulator.api("POST", "/api/v1/customers", json={"email": f"c{n}@example.com"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = emulator.api("GET", "/api/v1/customers", params=params)
        seen += [c["email"] for c in page["data"]]
        if not page["hasMore"]:
            assert "nextCursor" not in page
            break
        cursor = page["nextCursor"]
    assert seen == [f"c{n}@example.com" for n in range(5)]
    bad = emulator.client.get("/api/v1/customers", params={"cursor": "nonsense!"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"


def test_usage_events_are_deduplicated_by_event_id(emulator: Emulator) -> None:
    emulator.api("POST", "/api/v1/customers", json={"externalId": "u", "email": "u@example.com"})
    sub = emulator.api(
        "POST", "/api/v1/subscriptions", json={"customerId": "u", "planId": "plan_starter"}
    )
    emulator.api("POST", f"/api/emulator/subscriptions/{sub['id']}/pay")
    body = {"customerId": "u", "featureCode": "api_calls", "value": 300, "eventId": "req-1"}
    first = emulator.client.post("/api/v1/usage/events", json=body)
    again = emulator.client.post("/api/v1/usage/events", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    access = emulator.api("GET", "/api/v1/feature-access/api_calls", params={"customerId": "u"})
    assert access["type"] == "usage" and access["consumption"]["unitsUsed"] == 300
    assert access["allowed"] is True
    recorded = emulator.api("GET", "/api/emulator/events", params={"event": "usage.recorded"})
    assert len(recorded) == 1


def test_unknown_customers(emulator: Emulator) -> None:
    params = {"customerId": "never_seen"}
    assert emulator.api("GET", "/api/v1/subscriptions/active", params=params) is None
    access = emulator.api("GET", "/api/v1/feature-access/advanced_analytics", params=params)
    assert access["allowed"] is False and access["type"] == "boolean"
    for method, path, body in (
        ("POST", "/api/v1/subscriptions", {"customerId": "never_seen", "planId": "plan_pro"}),
        ("POST", "/api/v1/usage/events", {"customerId": "never_seen", "featureCode": "api_calls"}),
        ("GET", "/api/v1/customers/never_seen", None),
        ("GET", "/api/v1/feature-access?customerId=never_seen", None),
    ):
        response = emulator.client.request(method, path, json=body)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "customer_not_found"
    unknown_feature = emulator.client.get("/api/v1/feature-access/teleport", params=params)
    assert unknown_feature.json()["error"]["code"] == "feature_not_found"
