"""``Commet`` against a real HTTP server on 127.0.0.1 speaking the platform's v1 wire."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import msgspec
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
    API_VERSION,
    BalanceConsumption,
    BooleanFeatureAccess,
    CommetConnectionError,
    CommetTimeoutError,
    CreditsConsumption,
    FeatureAccess,
    FeatureAccessList,
    MeteredConsumption,
    QuotaFeatureAccess,
    SeatsFeatureAccess,
    Subscription,
    UnknownFeatureAccess,
    UsageEvent,
    UsageFeatureAccess,
)
from commet_webhooks.testing import sample_event, signed_request

from .conftest import API_KEY, Reply, StateServer, free_port
from .platform import (
    boolean_access,
    error_body,
    quota_access,
    seats_access,
    subscription,
    usage_access,
)

FAST: dict[str, Any] = {"backoff_base": 0.01, "timeout": 10.0}


@pytest.fixture
def commet(server: StateServer) -> Iterator[Commet]:
    with Commet(api_key=API_KEY, base_url=server.url, **FAST) as client:
        yield client


def _all_access(server: StateServer, customer: str = "user_123") -> None:
    for payload in (
        boolean_access("advanced_analytics", True),
        usage_access("api_calls", "metered"),
        usage_access("ai_tokens", "credits"),
        usage_access("storage", "balance"),
        seats_access("seats"),
        quota_access("projects", used=11, included=10),
    ):
        server.features[(customer, payload["code"])] = payload


# --------------------------------------------------------------------------- wire


def test_active_subscription_speaks_the_v1_wire(server: StateServer, commet: Commet) -> None:
    server.subscriptions["user_123"] = subscription("user_123")

    sub = commet.subscriptions.get_active(customer_id="user_123")

    (seen,) = server.seen
    assert (seen.method, seen.raw_path) == ("GET", "/api/v1/subscriptions/active")
    assert seen.query == {"customerId": ["user_123"]}
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["commet-version"] == "2026-08-27" == API_VERSION
    assert seen.headers["user-agent"].startswith(f"commet-webhooks/{commet_webhooks.__version__}")
    assert seen.headers["accept"] == "application/json"
    assert "idempotency-key" not in seen.headers  # reads carry none

    assert isinstance(sub, Subscription)
    assert (sub.id, sub.customer_id, sub.status, sub.is_active) == (
        "sub_user_123",
        "user_123",
        "active",
        True,
    )
    assert (sub.plan.id, sub.plan.name, sub.plan.base_price) == ("plan_pro", "Pro", 49.5)
    assert sub.billing_interval == "monthly"
    assert sub.current_period is not None
    assert sub.current_period.days_remaining == 3.75
    assert sub.current_period.end == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert sub.updated_at is not None and sub.updated_at.tzinfo is not None
    assert [f.code for f in sub.features] == ["advanced_analytics", "api_calls", "seats"]
    seats = sub.feature("seats")
    assert seats is not None and seats.type == "seats"
    assert sub.feature("nope") is None


def test_seed_name_subscriptions_get_wraps_the_same_call(
    server: StateServer, commet: Commet
) -> None:
    server.subscriptions["user_123"] = subscription("user_123", status="trialing")
    wrapped = commet.subscriptions.get("user_123")
    assert isinstance(wrapped, ApiResponse) and wrapped.success
    assert isinstance(wrapped.data, Subscription) and wrapped.data.status == "trialing"
    assert wrapped.request_id == "req_1"
    assert server.seen[0].raw_path == "/api/v1/subscriptions/active"


def test_no_active_subscription_is_none(server: StateServer, commet: Commet) -> None:
    assert commet.subscriptions.get_active(customer_id="user_without_plan") is None
    wrapped = commet.subscriptions.get("user_without_plan")
    assert wrapped.success is True and wrapped.data is None
    # The same answer spelled as an error, or as an empty body, means the same.
    server.enqueue(
        Reply(404, error_body("no_active_subscription", "No active subscription")),
        Reply(200, body=b""),
    )
    assert commet.subscriptions.get_active(customer_id="u") is None
    assert commet.subscriptions.get_active(customer_id="u") is None


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ("active", True),
        ("trialing", True),
        ("past_due", False),
        ("paused", False),
        ("canceled", False),
        ("pending_payment", False),
        ("draft", False),
        ("some_future_status", False),
    ],
)
def test_is_active_follows_the_access_rule(
    server: StateServer, commet: Commet, status: str, active: bool
) -> None:
    server.subscriptions["u"] = subscription("u", status=status)
    sub = commet.subscriptions.get_active(customer_id="u")
    assert sub is not None and sub.status == status
    assert sub.is_active is active
    if status == "paused":
        assert sub.pause is not None and sub.pause.mode == "immediate"


def test_feature_access_of_each_type_decodes(server: StateServer, commet: Commet) -> None:
    _all_access(server)

    boolean = commet.feature_access.get("advanced_analytics", customer_id="user_123")
    assert isinstance(boolean, BooleanFeatureAccess)
    assert (boolean.type, boolean.allowed, boolean.enabled) == ("boolean", True, True)

    metered = commet.feature_access.get("api_calls", customer_id="user_123")
    assert isinstance(metered, UsageFeatureAccess)
    assert isinstance(metered.consumption, MeteredConsumption)
    c = metered.consumption
    assert (c.units_used, c.included_units, c.remaining_units) == (120.5, 1000, 879.5)
    assert c.overage.enabled and not isinstance(c.overage.unit_price, msgspec.UnsetType)
    assert c.overage.unit_price.value == pytest.approx(0.002)

    credits = commet.feature_access.get("ai_tokens", customer_id="user_123")
    assert isinstance(credits, UsageFeatureAccess)
    assert isinstance(credits.consumption, CreditsConsumption)
    assert (credits.consumption.credits_per_unit, credits.consumption.available_units) == (5, 400)

    balance = commet.feature_access.get("storage", customer_id="user_123")
    assert isinstance(balance, UsageFeatureAccess)
    assert isinstance(balance.consumption, BalanceConsumption)
    assert balance.consumption.spent.amount == 1250

    seats = commet.feature_access.get("seats", customer_id="user_123")
    assert isinstance(seats, SeatsFeatureAccess)
    assert (seats.usage.units_used, seats.usage.included_units, seats.usage.remaining_units) == (
        3,
        5,
        2,
    )

    quota = commet.feature_access.get("projects", customer_id="user_123")
    assert isinstance(quota, QuotaFeatureAccess)
    assert (quota.allowed, quota.usage.billed_units, quota.usage.overage.units) == (False, 8, 1)

    assert [s.raw_path for s in server.seen] == [
        f"/api/v1/feature-access/{code}"
        for code in ("advanced_analytics", "api_calls", "ai_tokens", "storage", "seats", "projects")
    ]
    assert all(s.query == {"customerId": ["user_123"]} for s in server.seen)


def test_feature_access_list(server: StateServer, commet: Commet) -> None:
    _all_access(server)
    server.features[("user_123", "hologram")] = {
        **boolean_access("hologram", True),
        "type": "hologram",
    }
    server.features[("someone_else", "x")] = boolean_access("x", True)

    page = commet.feature_access.list(customer_id="user_123")

    assert isinstance(page, FeatureAccessList)
    assert (page.object, page.has_more) == ("list", False)
    by_code = {a.code: a for a in page.data}
    assert sorted(by_code) == [
        "advanced_analytics",
        "ai_tokens",
        "api_calls",
        "hologram",
        "projects",
        "seats",
        "storage",
    ]
    assert isinstance(by_code["hologram"], UnknownFeatureAccess)
    assert by_code["hologram"].type == "hologram" and by_code["hologram"].allowed
    (seen,) = server.seen
    assert (seen.raw_path, seen.query) == ("/api/v1/feature-access", {"customerId": ["user_123"]})


def test_seed_feature_names_hit_v1_paths(server: StateServer, commet: Commet) -> None:
    _all_access(server)

    assert commet.features.check(code="advanced_analytics", customer_id="user_123").data.allowed
    assert not commet.features.check(code="projects", customer_id="user_123").data.allowed
    full = commet.features.get(code="api_calls", customer_id="user_123")
    assert isinstance(full, ApiResponse)
    assert isinstance(full.data, UsageFeatureAccess)
    assert isinstance(full.data, FeatureAccess)

    assert [s.raw_path for s in server.seen] == [
        "/api/v1/feature-access/advanced_analytics",
        "/api/v1/feature-access/projects",
        "/api/v1/feature-access/api_calls",
    ]


def test_api_version_pins_the_header(server: StateServer) -> None:
    with Commet(api_key=API_KEY, base_url=server.url, api_version="2026-05-01") as c:
        assert c.api_version == "2026-05-01"
        c.subscriptions.get("u")
        c.feature_access.list(customer_id="u")
        c.usage.track(feature_code="api_calls", customer_id="u")
    assert [s.headers["commet-version"] for s in server.seen] == ["2026-05-01"] * 3


def test_usage_track(server: StateServer, commet: Commet) -> None:
    event = commet.usage.track(
        feature_code="api_calls",
        customer_id="user_123",
        value=2.5,
        event_id="evt_42",
        timestamp=datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc),
        properties={"model": "gpt", "region": "eu"},
    )
    (seen,) = server.seen
    assert (seen.method, seen.raw_path) == ("POST", "/api/v1/usage/events")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["commet-version"] == API_VERSION
    assert seen.json() == {
        "featureCode": "api_calls",
        "customerId": "user_123",
        "value": 2.5,
        "eventId": "evt_42",
        "timestamp": "2026-11-28T10:00:00Z",
        "properties": [
            {"property": "model", "value": "gpt"},
            {"property": "region", "value": "eu"},
        ],
    }
    assert isinstance(event, UsageEvent)
    assert (event.feature_code, event.customer_id, event.value, event.event_id) == (
        "api_calls",
        "user_123",
        2.5,
        "evt_42",
    )
    assert [(p.property, p.value) for p in event.properties] == [("model", "gpt"), ("region", "eu")]

    commet.usage.track(feature_code="api_calls", customer_id="user_123")
    assert server.seen[1].json() == {"featureCode": "api_calls", "customerId": "user_123"}
    keys = [s.headers["idempotency-key"] for s in server.seen]
    assert len(set(keys)) == 2  # a fresh key per call


def test_usage_track_rejects_bad_arguments_before_sending(
    server: StateServer, commet: Commet
) -> None:
    for kwargs in (
        {"feature_code": "", "customer_id": "u"},
        {"feature_code": "f", "customer_id": " "},
        {"feature_code": "f", "customer_id": "u", "value": float("nan")},
        {"feature_code": "f", "customer_id": "u", "value": True},
        {"feature_code": "f", "customer_id": "u", "properties": [{"property": "a"}]},
        {"feature_code": "f", "customer_id": "u", "idempotency_key": "has space"},
    ):
        with pytest.raises(ValueError):
            commet.usage.track(**kwargs)
    assert server.seen == []


def test_idempotency_key_is_reused_across_retries(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(503), Reply(drop=True))
    event = commet.usage.track(feature_code="api_calls", customer_id="u", value=1)
    assert len(server.seen) == 3
    keys = {s.headers["idempotency-key"] for s in server.seen}
    assert len(keys) == 1
    # The same key sent again replays the first answer instead of counting twice.
    again = commet.usage.track(
        feature_code="api_calls", customer_id="u", idempotency_key=keys.pop()
    )
    assert again.id == event.id


def test_path_segment_and_query_are_encoded(server: StateServer, commet: Commet) -> None:
    code, customer = "team/seats ?#é", "cus &id=1"
    server.features[(customer, code)] = boolean_access(code, True)

    assert commet.features.check(code=code, customer_id=customer).data.allowed

    (seen,) = server.seen
    assert seen.raw_path.count("/") == 4  # the code stayed one segment
    assert seen.path == f"/api/v1/feature-access/{code}"
    assert seen.query == {"customerId": [customer]}


def test_one_host_and_base_url_override(server: StateServer) -> None:
    assert Commet(api_key=API_KEY).base_url == "https://commet.co"
    sandbox = Commet(api_key=API_KEY, environment="sandbox")
    assert (sandbox.base_url, sandbox.environment) == ("https://commet.co", "sandbox")
    with Commet(api_key=API_KEY, base_url=server.url + "/", environment="sandbox") as c:
        assert c.base_url == server.url
        assert c.subscriptions.get("x").data is None
    with (
        Commet(api_key=API_KEY, base_url=server.url + "/proxy", retries=0) as c,
        pytest.raises(CommetAPIError),
    ):
        c.subscriptions.get("x")
    assert server.seen[-1].raw_path == "/proxy/api/v1/subscriptions/active"


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


def test_errors_expose_the_platform_error_object(server: StateServer) -> None:
    with (
        Commet(api_key="ck_wrong", base_url=server.url, **FAST) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    err = info.value
    assert (err.status_code, err.status, err.type, err.code) == (
        401,
        401,
        "authentication_error",
        "unauthorized",
    )
    assert err.message == "Invalid or missing API key"
    assert err.doc_url == "https://commet.co/docs/api-reference/errors/unauthorized.md"
    assert err.request_id == "req_1"
    assert err.param is None
    assert str(err) == "401 unauthorized: Invalid or missing API key [request id req_1]"
    assert len(server.seen) == 1


def test_errors_survive_pickling(server: StateServer, commet: Commet) -> None:
    import pickle

    server.enqueue(
        Reply(
            422,
            error_body(
                "validation_error",
                "bad",
                param="customerId",
                details=[{"field": "customerId", "message": "Required"}],
            ),
        )
    )
    with pytest.raises(CommetValidationError) as info:
        commet.subscriptions.get("u")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is CommetValidationError
    assert (copy.status, copy.code, copy.param, copy.request_id, copy.errors) == (
        422,
        "validation_error",
        "customerId",
        "req_1",
        {"customerId": ["Required"]},
    )
    assert str(copy) == str(info.value)
    timeout = pickle.loads(pickle.dumps(CommetTimeoutError("slow")))
    assert (type(timeout), timeout.code, timeout.message) == (CommetTimeoutError, "timeout", "slow")


def test_unknown_feature_is_404_not_retried(server: StateServer, commet: Commet) -> None:
    with pytest.raises(CommetAPIError) as info:
        commet.feature_access.get("ghost", customer_id="u")
    assert (info.value.status_code, info.value.code, info.value.type) == (
        404,
        "feature_not_found",
        "not_found_error",
    )
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
            error_body("validation_error", "Invalid request", param="customerId", details=details),
        )
    )
    with pytest.raises(CommetValidationError) as info:
        commet.features.get(code="x", customer_id="u")
    err = info.value
    assert isinstance(err, CommetAPIError)
    assert (err.status_code, err.code, err.message, err.param) == (
        400,
        "validation_error",
        "Invalid request",
        "customerId",
    )
    assert err.details == details
    assert (
        err.errors
        == err.validation_errors
        == {
            "customerId": ["Required", "Must start with cus_ or be an external id"],
            "code.0": ["Unknown feature code"],
            "": ["Something about the whole request"],
        }
    )
    assert err.doc_url is not None and err.doc_url.endswith("/validation_error.md")


def test_validation_error_from_the_server_and_client_side_checks(server: StateServer) -> None:
    # An empty customer id never leaves the client ...
    with Commet(api_key=API_KEY, base_url=server.url) as c, pytest.raises(ValueError):
        c.subscriptions.get("  ")
    assert server.seen == []
    # ... and the server's own answer to a missing one is read with its param.
    with (
        Commet(api_key=API_KEY, base_url=server.url) as c,
        pytest.raises(CommetValidationError) as info,
    ):
        c._send(_call_without_customer())
    assert info.value.param == "customerId"
    assert info.value.errors == {"customerId": ["Required"]}
    server.enqueue(Reply(422, {"code": "validation_error", "details": {"customerId": "Required"}}))
    with (
        Commet(api_key=API_KEY, base_url=server.url) as c,
        pytest.raises(CommetValidationError) as info2,
    ):
        c.subscriptions.get("u")
    assert info2.value.errors == {"customerId": ["Required"]}
    assert info2.value.message == "customerId: Required"


def _call_without_customer() -> Any:
    from commet_webhooks.client._core import Call

    return Call("GET", "/api/v1/subscriptions/active", None, Subscription | None, nullable=True)


def test_retired_endpoint_is_410_not_retried(server: StateServer, commet: Commet) -> None:
    server.enqueue(
        Reply(410, error_body("endpoint_deprecated", "Use /api/v1", type_="not_found_error"))
    )
    with pytest.raises(CommetAPIError) as info:
        commet.subscriptions.get("u")
    assert (info.value.status_code, info.value.code) == (410, "endpoint_deprecated")
    assert len(server.seen) == 1


def test_legacy_wrapper_is_still_read(server: StateServer, commet: Commet) -> None:
    server.enqueue(
        Reply(200, {"success": True, "data": boolean_access("x", True), "message": "ok"}),
        Reply(200, {"success": False, "code": "plan_missing", "message": "No plan"}),
    )
    wrapped = commet.features.get(code="x", customer_id="u")
    assert wrapped.data.allowed and wrapped.message == "ok"
    with pytest.raises(CommetAPIError) as info:
        commet.subscriptions.get("u")
    assert (info.value.status_code, info.value.code, info.value.message) == (
        200,
        "plan_missing",
        "No plan",
    )


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, body=b"<html>hello</html>"),
        Reply(200, {"code": "x"}),
        Reply(200, None),
        Reply(200, {**boolean_access("x"), "allowed": "yes"}),
    ],
)
def test_malformed_success_is_a_clear_error(
    server: StateServer, commet: Commet, reply: Reply
) -> None:
    server.enqueue(reply)
    with pytest.raises(CommetAPIError) as info:
        commet.features.check(code="x", customer_id="u")
    assert (info.value.status_code, info.value.code) == (200, "invalid_response")
    assert info.value.request_id == "req_1"


def test_non_json_error_body(server: StateServer) -> None:
    server.enqueue(Reply(502, body=b"<html>Bad gateway</html>"))
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=0) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    assert (info.value.status_code, info.value.code) == (502, "server_error")
    assert info.value.message == "HTTP 502 Bad Gateway"


# --------------------------------------------------------------------------- retries


def test_503_503_200_succeeds(server: StateServer, commet: Commet) -> None:
    server.subscriptions["u"] = subscription("u")
    server.enqueue(Reply(503), Reply(503, body=b"oops"))
    sub = commet.subscriptions.get_active(customer_id="u")
    assert sub is not None and sub.id == "sub_u"
    assert len(server.seen) == 3


def test_429_without_retry_after_is_raised_at_once(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(429, error_body("rate_limited", "Slow down", type_="rate_limit_error")))
    with pytest.raises(CommetAPIError) as info:
        commet.subscriptions.get("u")
    assert (info.value.status_code, info.value.code, info.value.type) == (
        429,
        "rate_limited",
        "rate_limit_error",
    )
    assert len(server.seen) == 1


def test_429_with_retry_after_waits_then_succeeds(server: StateServer, commet: Commet) -> None:
    server.features[("u", "x")] = boolean_access("x", True)
    server.enqueue(Reply(429, headers={"Retry-After": "1"}))
    assert commet.feature_access.get("x", customer_id="u").allowed
    first, second = server.seen
    # backoff_base is 0.01 s: only the header explains a wait this long.
    assert second.at - first.at >= 0.9


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_gives_up_after_the_configured_retries(server: StateServer, status: int) -> None:
    reply = Reply(status, error_body("busy", "busy"), headers={"Retry-After": "0.01"})
    server.enqueue(*[reply] * 4)
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=2, **FAST) as c,
        pytest.raises(CommetAPIError) as info,
    ):
        c.subscriptions.get("u")
    assert info.value.status_code == status
    assert info.value.message == "busy"
    assert len(server.seen) == 3
    assert len(server.script) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_errors_are_not_retried(server: StateServer, commet: Commet, status: int) -> None:
    server.enqueue(Reply(status, error_body("nope", "no"), headers={"Retry-After": "0"}))
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


def test_retry_after_http_date_is_honoured(server: StateServer, commet: Commet) -> None:
    server.enqueue(Reply(503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    commet.subscriptions.get("u")
    first, second = server.seen
    assert second.at - first.at >= 0.9


def test_retry_after_is_capped(server: StateServer) -> None:
    server.enqueue(Reply(429, headers={"Retry-After": "86400"}))
    with Commet(api_key=API_KEY, base_url=server.url, max_retry_after=0.05) as c:
        assert c.subscriptions.get("u").data is None
    assert len(server.seen) == 2
    assert Commet(api_key=API_KEY)._core.config.max_retry_after == 30.0


@pytest.mark.parametrize(
    "retry_after",
    ["-5", formatdate(time.time() - 3600, usegmt=True)],
    ids=["negative", "past-date"],
)
@pytest.mark.parametrize("status", [429, 503])
def test_unusable_retry_after_falls_back_to_backoff(
    server: StateServer, retry_after: str, status: int
) -> None:
    server.enqueue(Reply(status, headers={"Retry-After": retry_after}))
    with Commet(api_key=API_KEY, base_url=server.url, backoff_base=0.6, max_backoff=0.6) as c:
        assert c.subscriptions.get("u").data is None
    first, second = server.seen
    # Backoff with jitter waits at least half of 0.6 s; taking the header at its word
    # would have retried at once.
    assert second.at - first.at >= 0.25


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


# --------------------------------------------------------------------------- hardening


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_a_dripping_server_cannot_hold_a_call_past_timeout(
    server: StateServer, drip_headers: bool
) -> None:
    # Every byte arrives well within the per-read timeout; the answer as a whole
    # would take 40 s.
    server.enqueue(
        Reply(200, body=b" " * 400 + b"null", drip=0.1, drip_headers=drip_headers),
    )
    with (
        Commet(api_key=API_KEY, base_url=server.url, timeout=1.0, retries=0) as c,
        pytest.raises(CommetTimeoutError),
    ):
        c.subscriptions.get("u")
    assert True not in server.finished  # the server was still dripping


def test_oversized_answers_are_refused(server: StateServer) -> None:
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    server.enqueue(
        Reply(200, body=big),  # declared by Content-Length
        Reply(200, body=big, length=-1),  # no length: counted while reading
    )
    with Commet(api_key=API_KEY, base_url=server.url, max_response_bytes=4096) as c:
        for _ in range(2):
            with pytest.raises(CommetAPIError) as info:
                c.subscriptions.get("u")
            assert (info.value.status_code, info.value.code) == (200, "response_too_large")
            assert "4096" in info.value.message
        server.subscriptions["u"] = subscription("u")
        assert c.subscriptions.get_active(customer_id="u") is not None  # small ones pass
    assert len(server.seen) == 3  # never retried
    with pytest.raises(ValueError, match="max_response_bytes"):
        Commet(api_key=API_KEY, max_response_bytes=0)


def test_deprecated_path_warns_once_naming_its_successor(
    server: StateServer, commet: Commet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="commet_webhooks.client")
    legacy = {
        "Deprecation": "true",
        "Sunset": "Sat, 01 May 2027 00:00:00 GMT",
        "Link": '<https://commet.co/api/v1/subscriptions/active>; rel="successor-version"',
    }
    server.enqueue(Reply(200, None, headers=legacy), Reply(200, None, headers=legacy))
    with pytest.warns(DeprecationWarning, match="successor is https://commet.co/api/v1/sub"):
        commet.subscriptions.get("u")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        commet.subscriptions.get("u")  # same path: no second warning
        commet.subscriptions.get("u")  # no headers: nothing
    records = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(records) == 1
    assert "GET /api/v1/subscriptions/active" in records[0].getMessage()
    assert "Sat, 01 May 2027" in records[0].getMessage()


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
        {"base_url": "https://commet.co/api/v1/"},
        {"base_url": "https://commet.co/?x=1"},
        {"api_version": "latest"},
        {"api_version": ""},
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
    echoed = {
        "error": {
            "type": f"type_{API_KEY}",
            "code": f"code_{API_KEY}",
            "message": f"key {API_KEY} was revoked",
            "param": f"x-api-key={API_KEY}",
            "details": {"key": API_KEY, "list": [API_KEY]},
            "doc_url": f"https://commet.co/docs?key={API_KEY}",
        }
    }
    with (
        Commet(api_key=API_KEY, base_url=server.url, retries=1, backoff_base=0.01) as c,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        c.subscriptions.get("u")
        server.enqueue(
            Reply(503),
            Reply(401, echoed, headers={"x-request-id": f"req_{API_KEY}"}),
            Reply(200, {**boolean_access("x"), "type": 7, "allowed": API_KEY}),
            Reply(
                200,
                None,
                headers={"Deprecation": "true", "Link": f"<https://x.test/?k={API_KEY}>"},
            ),
            Reply(422, error_body("validation_error", "bad", details=[{"field": API_KEY}])),
        )
        with pytest.raises(CommetAPIError) as info:
            c.subscriptions.get("u")
        errors.append(info.value)
        with pytest.raises(CommetAPIError) as info:
            c.features.get(code="x", customer_id="u")
        errors.append(info.value)
        c.subscriptions.get("u")
        with pytest.raises(CommetValidationError) as info:
            c.subscriptions.get("u")
        errors.append(info.value)
        texts = [repr(c), str(c), repr(vars(c)), repr(c._core.config), repr(c._http.auth)]
    texts += [str(w.message) for w in caught]
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
        texts += [repr(err), str(err), repr(err.details), repr(err.args), repr(vars(err))]
        if err.__cause__ is not None:
            texts += [repr(err.__cause__), str(err.__cause__)]
    first = errors[0]
    assert "[redacted]" in first.message
    assert first.details == {"key": "[redacted]", "list": ["[redacted]"]}
    assert (first.type, first.code, first.param, first.request_id) == (
        "type_[redacted]",
        "code_[redacted]",
        "x-api-key=[redacted]",
        "req_[redacted]",
    )
    assert first.doc_url == "https://commet.co/docs?key=[redacted]"
    assert errors[1].code == "invalid_response"
    assert errors[2].errors == {"[redacted]": ["invalid"]}
    assert any("deprecated" in t for t in texts)
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
    from commet_webhooks.client import ActiveSubscription, FeatureCheck, Plan

    for name in ("Commet", "AsyncCommet", "ApiResponse", "CommetAPIError", "CommetValidationError"):
        assert getattr(commet_webhooks, name) is getattr(client, name)
    assert Path(client.__file__).parent.name == "client"
    assert ActiveSubscription is Subscription
    assert Plan is client.SubscriptionPlan
    assert FeatureCheck(allowed=True).allowed


# --------------------------------------------------------------------------- docs


def _python_block(path: Path, after: str) -> str:
    text = path.read_text()
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```", start)]


@pytest.mark.parametrize(
    ("doc", "after"),
    [("README.md", "## Querying state"), ("docs/client.md", "# Querying Commet state")],
)
def test_the_docs_first_example_runs(
    server: StateServer, monkeypatch: pytest.MonkeyPatch, doc: str, after: str
) -> None:
    from commet_webhooks.client import _core

    root = Path(__file__).resolve().parents[2]
    code = _python_block(root / doc, after)
    server.api_key = "ck_docs_example"
    monkeypatch.setenv("COMMET_API_KEY", "ck_docs_example")
    code = code.replace('"ck_..."', '"ck_docs_example"')
    monkeypatch.setattr(_core, "DEFAULT_BASE_URL", server.url)  # the docs use the real host
    server.subscriptions["user_123"] = subscription("user_123")
    server.features[("user_123", "advanced_analytics")] = boolean_access("advanced_analytics")
    exec(compile(code, doc, "exec"), {})
    assert [(s.method, s.raw_path) for s in server.seen] == [
        ("GET", "/api/v1/subscriptions/active"),
        ("GET", "/api/v1/feature-access/advanced_analytics"),
        ("POST", "/api/v1/usage/events"),
    ]
