"""The API contract: key required, wrapper shape, validation errors, endpoint rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from commet_webhooks.emulator import create_app
from emulator.emulator_helpers import API_KEY, Emulator, free_port

ROUTES = [
    ("GET", "/api/webhooks"),
    ("POST", "/api/webhooks"),
    ("DELETE", "/api/webhooks/ep_x"),
    ("GET", "/api/emulator/events"),
    ("POST", "/api/emulator/events"),
    ("GET", "/api/emulator/deliveries"),
    ("POST", "/api/emulator/deliveries/dlv_x/retry"),
    ("POST", "/api/emulator/customers"),
    ("POST", "/api/emulator/subscriptions"),
    ("POST", "/api/emulator/subscriptions/sub_x/pay"),
    ("PATCH", "/api/emulator/subscriptions/sub_x"),
    ("GET", "/api/subscriptions/active?customerId=u"),
    ("GET", "/api/features/api_calls?customerId=u"),
    ("GET", "/api/does-not-exist"),
]


@pytest.mark.parametrize("key", [None, "ck_wrong", ""])
def test_every_api_route_needs_the_key(emulator: Emulator, key: str | None) -> None:
    headers = {} if key is None else {"x-api-key": key}
    with httpx.Client(base_url=emulator.url, timeout=30) as anonymous:
        for method, path in ROUTES:
            response = anonymous.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path)
            body = response.json()
            assert body["success"] is False and body["code"] == "unauthorized"
            assert set(body) == {"success", "code", "message", "details"}
            assert API_KEY not in response.text


def test_success_wrapper_and_endpoint_registry(emulator: Emulator) -> None:
    response = emulator.client.post(
        "/api/webhooks", json={"url": "https://example.com/hook", "events": ["payment.failed"]}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    endpoint = body["data"]
    assert set(endpoint) == {"id", "url", "events", "secret", "enabled", "warnings"}
    assert endpoint["warnings"] == []
    assert endpoint["url"] == "https://example.com/hook"
    assert endpoint["events"] == ["payment.failed"]
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) > 30
    other = emulator.endpoint("http://localhost:9/hook")
    assert other["secret"] != endpoint["secret"]
    listed = emulator.api("GET", "/api/webhooks")
    assert [e["id"] for e in listed] == [endpoint["id"], other["id"]]
    assert emulator.api("DELETE", f"/api/webhooks/{other['id']}") == {
        "id": other["id"],
        "deleted": True,
    }
    assert [e["id"] for e in emulator.api("GET", "/api/webhooks")] == [endpoint["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://example.com/hook"}, "url"),
        ({"url": "ftp://127.0.0.1/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"url": 42}, "url"),
        ({}, "url"),
        ({"url": "https://example.com", "events": "payment.failed"}, "events"),
        ({"url": "https://example.com", "events": ["payment failed"]}, "events[0]"),
        ({"url": "https://example.com", "events": [1]}, "events[0]"),
        ([], "body"),
    ],
)
def test_bad_endpoint_input_is_a_validation_error(
    emulator: Emulator, body: Any, field: str
) -> None:
    response = emulator.client.post("/api/webhooks", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False and payload["code"] == "validation_error"
    assert payload["details"][0]["field"] == field
    assert payload["details"][0]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
def test_plain_http_is_fine_on_loopback(emulator: Emulator, host: str) -> None:
    assert emulator.endpoint(f"http://{host}:8000/hook")["url"] == f"http://{host}:8000/hook"


def test_plain_http_refusal_names_the_command_line_flag(emulator: Emulator) -> None:
    response = emulator.client.post("/api/webhooks", json={"url": "http://example.com/hook"})
    message = response.json()["details"][0]["message"]
    assert "--allow-http" in message and "allow_http" not in message.replace("--allow-http", "")


def test_unknown_event_names_are_accepted_with_a_warning(emulator: Emulator) -> None:
    response = emulator.client.post(
        "/api/webhooks",
        json={"url": "https://example.com/hook", "events": ["payment.faild", "acme.thing", "*"]},
    )
    assert response.status_code == 201
    endpoint = response.json()["data"]
    assert endpoint["events"] == ["payment.faild", "acme.thing", "*"]
    assert endpoint["warnings"] == [
        "unknown event type 'payment.faild' (did you mean 'payment.failed'?)",
        "unknown event type 'acme.thing'",
    ]
    patched = emulator.api(
        "PATCH", f"/api/webhooks/{endpoint['id']}", json={"events": ["invoice.creatd"]}
    )
    assert patched["events"] == ["invoice.creatd"]
    assert patched["warnings"] == [
        "unknown event type 'invoice.creatd' (did you mean 'invoice.created'?)"
    ]
    assert (
        emulator.api("PATCH", f"/api/webhooks/{endpoint['id']}", json={"enabled": False})[
            "warnings"
        ]
        == []
    )


def test_allow_http_accepts_any_host(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(allow_http=True)
    assert emulator.endpoint("http://receiver.internal/hook")["enabled"] is True


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b'{"event": 5}', "event"),
        (b'{"event": ""}', "event"),
        (b'{"event": "no-dot"}', "event"),
        (b'{"event": "payment.failed", "data": [1]}', "data"),
        (b'"just a string"', "body"),
    ],
)
def test_bad_event_input(emulator: Emulator, content: bytes, field: str) -> None:
    response = emulator.client.post(
        "/api/emulator/events", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == field


def test_oversized_body_is_413(emulator: Emulator) -> None:
    response = emulator.client.post("/api/emulator/events", content=b" " * 1_100_000)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=5000", "status=lost"])
def test_bad_list_queries(emulator: Emulator, query: str) -> None:
    for path in ("/api/emulator/events", "/api/emulator/deliveries"):
        response = emulator.client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert response.json()["code"] == "validation_error"


def test_unknown_routes_and_methods_answer_in_the_wrapper(emulator: Emulator) -> None:
    missing = emulator.client.get("/api/nothing/here")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = emulator.client.put("/api/webhooks")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    gone = emulator.client.get("/api/webhooks/ep_missing")
    assert gone.status_code == 404 and gone.json()["success"] is False


def test_create_app_refuses_unusable_settings(tmp_path: Any) -> None:
    db = str(tmp_path / "x.db")
    for bad in (
        {"api_key": ""},
        {"api_key": "ck_x", "time_scale": 0},
        {"api_key": "ck_x", "time_scale": float("nan")},
        {"api_key": "ck_x", "retry_schedule": [-1]},
        {"api_key": "ck_x", "auto_disable_after": 0},
    ):
        with pytest.raises(ValueError):
            create_app(db_path=db, **bad)


def test_secrets_never_reach_the_logs(
    make_emulator: Callable[..., Emulator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="commet_webhooks")
    emulator = make_emulator(retry_schedule=[0.01], auto_disable_after=1)
    endpoint = emulator.endpoint(f"http://127.0.0.1:{free_port()}/hook")
    emulator.api("POST", "/api/emulator/events", json={"event": "payment.failed"})
    emulator.wait_delivery(lambda d: d["status"] == "failed")
    assert "failed" in caplog.text
    assert endpoint["secret"] not in caplog.text and API_KEY not in caplog.text
