"""``Commet`` against a real HTTP server on 127.0.0.1 speaking the state API wire."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

import commet_webhooks
from commet_webhooks import (
    ApiResponse,
    Commet,
    CommetAPIError,
    CommetValidationError,
    SubscriptionActivated,
    sign,
)
from commet_webhooks.client import (
    ActiveSubscription,
    CommetConnectionError,
    CommetTimeoutError,
    FeatureAccess,
)
from commet_webhooks.testing import sample_event, signed_request

from .conftest import API_KEY, Reply, StateServer, free_port, subscription

FAST: dict[str, Any] = {"backoff_base": 0.01, "timeout": 10.0}

BOOLEAN_FEATURE = {
    "code": "advanced_analytics",
    "name": "Advanced analytics",
    "type": "boolean",
    "allowed": True,
    "enabled": True,
}
METERED_FEATURE = {
    "code": "api_calls",
    "name": "API calls",
    "type": "metered",
    "allowed": False,
    "current": 1000,
    "included": 1000,
    "remaining": 0,
    "overage": 0,
    "overageUnitPrice": 2,
    "unlimited": False,
    "overageEnabled": False,
    "somethingNew": True,
}


@pytest.fixture
def commet(server: StateServer) -> Iterator[Commet]:
    with Commet(api_key=API_KEY, base_url=server.url, **FAST) as client:
        yield client


# --------------------------------------------------------------------------- wire


def test_get_active_subscription_speaks_the_wire(server: StateServer, commet: Commet) -> None:
    server.subscriptions["user_123"] = subscription("user_123")

    sub = commet.subscriptions.get("user_123")

    (seen,) = server.seen
    assert seen.method == "GET"
    assert seen.raw_path == "/api/subscriptions/active"
    assert seen.query == {"customerId": ["user_123"]}
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["user-agent"].startswith(f"commet-webhooks/{commet_webhooks.__version__}")
    assert seen.headers["accept"] == "application/json"

    assert isinstance(sub, ApiResponse)
    assert sub.success is True
    data = sub.data
    assert isinstance(data, ActiveSubscription)
    assert data.id == "sub_user_123"
    assert data.customer_id == "user_123"
    assert data.status == "active"
    assert data.is_active
    assert data.plan is not None
    assert (data.plan.id, data.plan.base_price, data.plan.billing_interval) == (
        "plan_pro",
        4900,
        "monthly",
    )
    assert data.current_period is not None
    assert data.current_period.days_remaining == 4
    assert data.current_period.end == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert data.updated_at is not None and data.updated_at.tzinfo is not None
    assert [f.code for f in data.features] == ["advanced_analytics", "api_calls"]
    analytics = data.feature("advanced_analytics")
    assert analytics is not None and analytics.enabled is True
    assert data.feature("nope") is None


def test_no_active_subscription_is_null_data(server: StateServer, commet: Commet) -> None:
    sub = commet.subscriptions.get("user_without_plan")
    assert sub.success is True
    assert sub.data is None


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ("active", True),
        ("trialing", True),
        ("past_due", False),
        ("paused", False),
        ("canceled", False),
        ("pending_payment", False),
    ],
)
def test_is_active_follows_the_access_rule(
    server: StateServer, commet: Commet, status: str, active: bool
) -> None:
    server.subscriptions["u"] = subscription("u", status=status)
    data = commet.subscriptions.get("u").data
    assert data is not None
    assert data.is_active is active


def test_features_check_and_get(server: StateServer, commet: Commet) -> None:
    server.features[("user_123", "advanced_analytics")] = BOOLEAN_FEATURE
    server.features[("user_123", "api_calls")] = METERED_FEATURE

    assert commet.features.check(code="advanced_analytics", customer_id="user_123").data.allowed
    assert not commet.features.check(code="api_calls", customer_id="user_123").data.allowed

    full = commet.features.get(code="api_calls", customer_id="user_123").data
    assert isinstance(full, FeatureAccess)
    assert (full.type, full.current, full.included, full.remaining) == ("metered", 1000, 1000, 0)
    assert full.overage_unit_price == 2
    assert full.overage_enabled is False

    assert [s.raw_path for s in server.seen] == [
        "/api/features/advanced_analytics",
        "/api/features/api_calls",
        "/api/features/api_calls",
    ]
    assert all(s.query == {"customerId": ["user_123"]} for s in server.seen)


def test_path_segment_and_query_are_encoded(server: StateServer, commet: Commet) -> None:
    code, customer = "team/seats ?#é", "cus &id=1"
    server.features[(customer, code)] = {**BOOLEAN_FEATURE, "code": code}

    assert commet.features.check(code=code, customer_id=customer).data.allowed

    (seen,) = server.seen
    assert seen.raw_path.count("/") == 3  # the code stayed one segment
    assert seen.path == f"/api/features/{code}"
    assert seen.query == {"customerId": [customer]}


def test_base_url_override_and_environments(server: StateServer) -> None:
    assert Commet(api_key=API_KEY).base_url == "https://commet.co"
    assert Commet(api_key=API_KEY, environment="sandbox").base_url == "https://sandbox.commet.co"
    with Commet(api_key=API_KEY, base_url=server.url + "/", environment="sandbox") as c:
        assert c.base_url == server.url
        assert c.subscriptions.get("x").data is None
    with (
        Commet(api_key=API_KEY, base_url=server.url + "/proxy", retries=0) as c,
        pytest.raises(CommetAPIError),
    ):
        c.subscriptions.get("x")
    assert server.seen[-1].raw_path == "/proxy/api/subscriptions/active"


def test_connections_are_reused(server: StateServer, commet: Commet) -> None:
    for _ in range(3):
        commet.subscriptions.get("u")
    assert len({s.client_port for s in server.seen}) == 1


def test_closed_client_refuses_requests(server: StateServer) -> None:
    with Commet(api_key=API_KEY, base_url=server.url) as c:
        c.subscriptions.get("u")
    with pytest.raises(RuntimeError, match="closed"):
        c.subscriptions.get("u")
    c.close()  # idempotent


# --------------------------------------------------------------------------- errors


def test_wrong_key_is_401_and_not_retried(server: StateServer) -> None:
    with (
        Commet(api_key="ck_wrong", base_url=server.url, **FAST) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    err = info.value
    assert (err.status_code, err.code) == (401, "unauthorized")
    assert err.message == "Invalid or missing API key"
    assert str(err) == "401 unauthorized: Invalid or missing API key"
    assert len(server.seen) == 1


def test_unknown_feature_is_404(server: StateServer, commet: Commet) -> None:
    with pytest.raises(CommetAPIError) as info:
        commet.features.check(code="ghost", customer_id="u")
    assert (info.value.status_code, info.value.code) == (404, "not_found")
    assert not isinstance(info.value, CommetValidationError)
    assert len(server.seen) == 1


def test_validation_error_maps_fields_to_messages(server: StateServer, commet: Commet) -> None:
    details = [
        {"field": "customerId", "message": "Required"},
        {"field": "customerId", "message": "Must start with cus_ or be an external id"},
        {"path": ["code", 0], "message": "Unknown feature code"},
        {"message": "Something about the whole request"},
    ]
    server.enqueue(
        Reply(
            400,
            {
                "success": False,
                "code": "validation_error",
                "message": "Invalid request",
                "details": details,
            },
        )
    )
    with pytest.raises(CommetValidationError) as info:
        commet.features.get(code="x", customer_id="u")
    err = info.value
    assert isinstance(err, CommetAPIError)
    assert (err.status_code, err.code, err.message) == (400, "validation_error", "Invalid request")
    assert err.details == details
    assert err.errors == {
        "customerId": ["Required", "Must start with cus_ or be an external id"],
        "code.0": ["Unknown feature code"],
        "": ["Something about the whole request"],
    }


def test_validation_error_map_form_and_client_side_check(server: StateServer) -> None:
    # An empty customer id never leaves the client; a map-shaped `details` is read too.
    with Commet(api_key=API_KEY, base_url=server.url) as c, pytest.raises(ValueError):
        c.subscriptions.get("  ")
    assert server.seen == []
    server.enqueue(Reply(422, {"code": "validation_error", "details": {"customerId": "Required"}}))
    with (
        Commet(api_key=API_KEY, base_url=server.url) as c,
        pytest.raises(CommetValidationError) as info,
    ):
        c.subscriptions.get("u")
    assert info.value.errors == {"customerId": ["Required"]}
    assert info.value.message == "customerId: Required"


def test_unsuccessful_2xx_raises(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(200, {"success": False, "code": "plan_missing", "message": "No plan"}))
    with pytest.raises(CommetAPIError) as info:
        commet.subscriptions.get("u")
    assert (info.value.status_code, info.value.code, info.value.message) == (
        200,
        "plan_missing",
        "No plan",
    )


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(200, body=b"<html>hello</html>"), "invalid_response"),
        (Reply(200, {"data": {}}), "invalid_response"),
        (Reply(200, {"success": True, "data": {"code": "x"}}), "invalid_response"),
        (Reply(200, {"success": True, "data": None}), "invalid_response"),
    ],
)
def test_malformed_success_is_a_clear_error(
    server: StateServer, commet: Commet, reply: Reply, code: str
) -> None:
    server.enqueue(reply)
    with pytest.raises(CommetAPIError) as info:
        commet.features.check(code="x", customer_id="u")
    assert (info.value.status_code, info.value.code) == (200, code)


def test_non_json_error_body(server: StateServer) -> None:
    server.enqueue(Reply(502, body=b"<html>Bad gateway</html>"))
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=0) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    assert (info.value.status_code, info.value.code) == (502, "server_error")
    assert info.value.message == "HTTP 502 Bad Gateway"


def test_nested_error_object_is_read(server: StateServer, commet: Commet) -> None:
    server.enqueue(
        Reply(
            403,
            {"success": False, "error": {"code": "forbidden_scope", "message": "Key lacks scope"}},
        )
    )
    with pytest.raises(CommetAPIError) as info:
        commet.subscriptions.get("u")
    assert (info.value.code, info.value.message) == ("forbidden_scope", "Key lacks scope")


# --------------------------------------------------------------------------- retries


def test_retryable_statuses_are_retried_until_success(server: StateServer, commet: Commet) -> None:
    server.subscriptions["u"] = subscription("u")
    server.enqueue(Reply(503), Reply(500, body=b"oops"), Reply(429))
    sub = commet.subscriptions.get("u")
    assert sub.data is not None and sub.data.id == "sub_u"
    assert len(server.seen) == 4


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_gives_up_after_the_configured_retries(server: StateServer, status: int) -> None:
    server.enqueue(*[Reply(status, {"success": False, "message": "busy"})] * 4)
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=2, **FAST) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    assert info.value.status_code == status
    assert info.value.message == "busy"
    assert len(server.seen) == 3
    assert len(server.script) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_errors_are_not_retried(server: StateServer, commet: Commet, status: int) -> None:
    server.enqueue(Reply(status, {"success": False, "code": "nope", "message": "no"}))
    with pytest.raises(CommetAPIError):
        commet.subscriptions.get("u")
    assert len(server.seen) == 1


def test_retries_zero_disables_retrying(server: StateServer) -> None:
    server.enqueue(Reply(503), Reply(503))
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=0) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    assert info.value.status_code == 503
    assert len(server.seen) == 1


def test_retry_after_seconds_is_honoured(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(429, headers={"Retry-After": "1"}))
    commet.subscriptions.get("u")
    first, second = server.seen
    # backoff_base is 0.01 s: only the header explains a wait this long.
    assert second.at - first.at >= 0.9


def test_retry_after_http_date_is_honoured(server: StateServer, commet: Commet) -> None:
    import time

    server.enqueue(Reply(503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    commet.subscriptions.get("u")
    first, second = server.seen
    assert second.at - first.at >= 0.9


def test_retry_after_is_capped(server: StateServer) -> None:
    server.enqueue(Reply(503, headers={"Retry-After": "86400"}))
    with Commet(api_key=API_KEY, base_url=server.url, max_retry_after=0.05) as c:
        assert c.subscriptions.get("u").data is None
    assert len(server.seen) == 2


def test_timeout_is_retried_then_raised(server: StateServer) -> None:
    server.enqueue(Reply(delay=5), Reply(delay=5))
    with (
        Commet(
            api_key=API_KEY, base_url=server.url, timeout=0.3, retries=1, backoff_base=0.01
        ) as c,
        pytest.raises(CommetTimeoutError) as info,
    ):
        c.subscriptions.get("u")
    err = info.value
    assert isinstance(err, CommetConnectionError) and isinstance(err, CommetAPIError)
    assert (err.status_code, err.code) == (None, "timeout")
    assert "0.3s" in err.message and "2 attempts" in err.message
    assert len(server.seen) == 2


def test_timeout_then_success(server: StateServer) -> None:
    server.enqueue(Reply(delay=5))
    with Commet(api_key=API_KEY, base_url=server.url, timeout=0.3, backoff_base=0.01) as c:
        assert c.subscriptions.get("u").success
    assert len(server.seen) == 2


def test_dropped_connection_is_retried(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(drop=True), Reply(drop=True))
    assert commet.subscriptions.get("u").success
    assert len(server.seen) == 3


def test_connection_refused_is_retried_then_raised(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    caplog.set_level(logging.INFO, logger="commet_webhooks")
    with (
        Commet(api_key=API_KEY, base_url=url, retries=2, backoff_base=0.01) as c,
        pytest.raises(CommetConnectionError) as info,
    ):
        c.subscriptions.get("u")
    err = info.value
    assert not isinstance(err, CommetTimeoutError)
    assert (err.status_code, err.code) == (None, "connection_error")
    assert url in err.message and "3 attempts" in err.message
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert [r.name for r in retries] == ["commet_webhooks.client"] * 2


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("key", ["", "   ", None, 123, "ck_with space", "ck_caf\u00e9"])
def test_unusable_api_key_is_a_value_error(key: Any) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        Commet(api_key=key)
    if isinstance(key, str) and key.strip():
        assert key not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"environment": "staging"},
        {"base_url": "ftp://commet.co"},
        {"base_url": "commet.co"},
        {"base_url": "https://commet.co/api"},
        {"base_url": "https://commet.co/?x=1"},
        {"retries": -1},
        {"retries": 1.5},
        {"timeout": 0},
        {"backoff_base": -1},
        {"max_backoff": float("nan")},
    ],
)
def test_bad_settings_are_value_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        Commet(api_key=API_KEY, **kwargs)
    assert API_KEY not in str(info.value)


def test_key_is_stripped_of_surrounding_whitespace(server: StateServer) -> None:
    with Commet(api_key=f"  {API_KEY}\n", base_url=server.url) as c:
        c.subscriptions.get("u")
    assert server.seen[0].headers["x-api-key"] == API_KEY


# --------------------------------------------------------------------------- secrecy


def test_api_key_never_leaks(
    server: StateServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    errors: list[CommetAPIError] = []
    with Commet(api_key=API_KEY, base_url=server.url, retries=1, backoff_base=0.01) as c:
        c.subscriptions.get("u")
        server.enqueue(
            Reply(503),
            Reply(
                401,
                {
                    "success": False,
                    "code": "unauthorized",
                    "message": f"key {API_KEY} was revoked",
                    "details": {"key": API_KEY},
                },
            ),
        )
        with pytest.raises(CommetAPIError) as info:
            c.subscriptions.get("u")
        errors.append(info.value)
        texts = [repr(c), str(c), repr(vars(c)), repr(c._core.config), repr(c._http.auth)]
    with (
        Commet(
            api_key=API_KEY,
            base_url=f"http://127.0.0.1:{free_port()}",
            retries=1,
            backoff_base=0.01,
        ) as c,
        pytest.raises(CommetConnectionError) as info2,
    ):
        c.subscriptions.get("u")
    errors.append(info2.value)
    for err in errors:
        texts += [repr(err), str(err), repr(err.details), repr(err.args)]
        if err.__cause__ is not None:
            texts += [repr(err.__cause__), str(err.__cause__)]
    assert "[redacted]" in errors[0].message
    assert errors[0].details == {"key": "[redacted]"}
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    out = capsys.readouterr()
    for text in [*texts, caplog.text, out.out, out.err]:
        assert API_KEY not in text
        assert "SECRETKEY" not in text


# --------------------------------------------------------------------------- webhooks


def test_webhooks_helpers_delegate_to_the_core(secret: str) -> None:
    commet = Commet(api_key=API_KEY)
    body, headers = signed_request(sample_event("subscription.activated"), secret)
    signature = headers["X-Commet-Signature"]
    assert commet.webhooks.verify(payload=body, signature=signature, secret=secret)
    assert not commet.webhooks.verify(payload=body + b" ", signature=signature, secret=secret)
    assert commet.webhooks.verify(
        payload=b"x", signature=sign(b"x", secret), secret=["whsec_old", secret]
    )
    event = commet.webhooks.verify_and_parse(raw_body=body, signature=signature, secret=secret)
    assert isinstance(event, SubscriptionActivated)
    assert (
        commet.webhooks.verify_and_parse(raw_body=body, signature="0" * 64, secret=secret) is None
    )
    commet.close()


def test_package_exports_the_client_names() -> None:
    from commet_webhooks import client

    for name in ("Commet", "AsyncCommet", "ApiResponse", "CommetAPIError", "CommetValidationError"):
        assert getattr(commet_webhooks, name) is getattr(client, name)
    assert Path(client.__file__).parent.name == "client"
