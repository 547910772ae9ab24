"""``AsyncCommet`` against the same real HTTP server: it mirrors ``Commet``."""

from __future__ import annotations

import logging
import warnings

import anyio
import pytest

from commet_webhooks import AsyncCommet, CommetAPIError, CommetValidationError
from commet_webhooks.client import (
    BooleanFeatureAccess,
    CommetConnectionError,
    CommetTimeoutError,
    FeatureAccessList,
    MeteredConsumption,
    QuotaFeatureAccess,
    SeatsFeatureAccess,
    Subscription,
    UsageEvent,
    UsageFeatureAccess,
)

from .conftest import API_KEY, Reply, StateServer, free_port
from .platform import boolean_access, error_body, quota_access, seats_access, subscription
from .platform import usage_access as usage_payload

pytestmark = pytest.mark.anyio


async def test_access_surface(server: StateServer) -> None:
    server.subscriptions["user_123"] = subscription("user_123", status="trialing")
    for payload in (
        boolean_access("analytics", True),
        usage_payload("api_calls", "metered"),
        seats_access("seats"),
        quota_access("projects"),
    ):
        server.features[("user_123", payload["code"])] = payload

    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:
        sub = await commet.subscriptions.get_active(customer_id="user_123")
        wrapped = await commet.subscriptions.get("user_123")
        none = await commet.subscriptions.get_active(customer_id="someone_else")
        chk = await commet.features.check(code="seats", customer_id="user_123")
        full = await commet.features.get(code="api_calls", customer_id="user_123")
        boolean = await commet.feature_access.get("analytics", customer_id="user_123")
        seats = await commet.feature_access.get("seats", customer_id="user_123")
        quota = await commet.feature_access.get("projects", customer_id="user_123")
        page = await commet.feature_access.list(customer_id="user_123")
        event = await commet.usage.track(feature_code="api_calls", customer_id="user_123", value=3)

    assert isinstance(sub, Subscription) and sub.is_active and sub.status == "trialing"
    assert sub.plan.base_price == 49.5
    assert wrapped.data == sub and none is None
    assert chk.data.allowed is True
    assert isinstance(full.data, UsageFeatureAccess)
    assert isinstance(full.data.consumption, MeteredConsumption)
    assert isinstance(boolean, BooleanFeatureAccess)
    assert isinstance(seats, SeatsFeatureAccess) and seats.usage.included_units == 5
    assert isinstance(quota, QuotaFeatureAccess) and quota.usage.billed_units == 8
    assert isinstance(page, FeatureAccessList) and len(page.data) == 4
    assert isinstance(event, UsageEvent) and event.value == 3
    assert [(s.method, s.raw_path) for s in server.seen] == [
        ("GET", "/api/v1/subscriptions/active"),
        ("GET", "/api/v1/subscriptions/active"),
        ("GET", "/api/v1/subscriptions/active"),
        ("GET", "/api/v1/feature-access/seats"),
        ("GET", "/api/v1/feature-access/api_calls"),
        ("GET", "/api/v1/feature-access/analytics"),
        ("GET", "/api/v1/feature-access/seats"),
        ("GET", "/api/v1/feature-access/projects"),
        ("GET", "/api/v1/feature-access"),
        ("POST", "/api/v1/usage/events"),
    ]
    assert {s.headers["x-api-key"] for s in server.seen} == {API_KEY}
    assert {s.headers["commet-version"] for s in server.seen} == {"2026-08-27"}
    assert "idempotency-key" in server.seen[-1].headers
    assert len({s.client_port for s in server.seen}) == 1  # one reused connection


async def test_api_version_and_idempotent_retries(server: StateServer) -> None:
    server.enqueue(Reply(502), Reply(drop=True))
    async with AsyncCommet(
        api_key=API_KEY, base_url=server.url, api_version="2026-07-31", backoff_base=0.01
    ) as commet:
        await commet.usage.track(feature_code="api_calls", customer_id="u", event_id="e1")
    assert len(server.seen) == 3
    assert {s.headers["commet-version"] for s in server.seen} == {"2026-07-31"}
    assert len({s.headers["idempotency-key"] for s in server.seen}) == 1


async def test_many_concurrent_calls_share_one_client(server: StateServer) -> None:
    customers = [f"user_{i}" for i in range(60)]
    for c in customers:
        server.subscriptions[c] = subscription(c)
    server.default_delay = 1.0  # keep requests in flight together
    results: dict[str, str | None] = {}

    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:

        async def fetch(customer: str) -> None:
            sub = await commet.subscriptions.get_active(customer_id=customer)
            results[customer] = sub.customer_id if sub else None

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for c in customers:
                    tg.start_soon(fetch, c)

    assert results == {c: c for c in customers}
    assert len(server.seen) == len(customers)
    assert server.max_in_flight >= 10


async def test_errors_and_validation(server: StateServer) -> None:
    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:
        server.enqueue(
            Reply(
                400,
                error_body(
                    "validation_error",
                    "customerId is required",
                    param="customerId",
                    details=[{"field": "customerId", "message": "Required"}],
                ),
            )
        )
        with pytest.raises(CommetValidationError) as info:
            await commet.subscriptions.get("u")
        assert info.value.errors == {"customerId": ["Required"]}
        assert info.value.param == "customerId" and info.value.request_id is not None
        with pytest.raises(CommetAPIError) as info404:
            await commet.feature_access.get("ghost", customer_id="u")
        assert (info404.value.code, info404.value.type) == ("feature_not_found", "not_found_error")
        assert info404.value.doc_url is not None
        with pytest.raises(ValueError):
            await commet.features.check(code="", customer_id="u")
    async with AsyncCommet(api_key="ck_wrong", base_url=server.url) as commet:
        with pytest.raises(CommetAPIError) as info401:
            await commet.subscriptions.get("u")
    assert info401.value.status_code == 401


async def test_retry_rules(server: StateServer) -> None:
    server.enqueue(Reply(503), Reply(503))
    async with AsyncCommet(api_key=API_KEY, base_url=server.url, backoff_base=0.01) as commet:
        assert (await commet.subscriptions.get("u")).success  # 503, 503, 200
        assert len(server.seen) == 3

        server.enqueue(Reply(429, error_body("rate_limited", "Slow down")))
        with pytest.raises(CommetAPIError) as info:
            await commet.subscriptions.get("u")
        assert info.value.status_code == 429
        assert len(server.seen) == 4  # no Retry-After: raised after one request

        server.enqueue(Reply(429, headers={"Retry-After": "1"}))
        assert (await commet.subscriptions.get("u")).success
        assert len(server.seen) == 6
        assert server.seen[5].at - server.seen[4].at >= 0.9


async def test_gives_up_after_retries(server: StateServer) -> None:
    server.enqueue(Reply(429, headers={"Retry-After": "0.01"}), Reply(502), Reply(504), Reply(503))
    async with AsyncCommet(
        api_key=API_KEY, base_url=server.url, retries=3, backoff_base=0.01
    ) as commet:
        with pytest.raises(CommetAPIError) as info:
            await commet.subscriptions.get("u")
    assert info.value.status_code == 503
    assert len(server.seen) == 4


async def test_timeout_and_connection_refused(
    server: StateServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.enqueue(Reply(delay=5), Reply(delay=5), Reply(delay=5))
    async with AsyncCommet(
        api_key=API_KEY, base_url=server.url, timeout=0.3, retries=2, backoff_base=0.01
    ) as commet:
        with pytest.raises(CommetTimeoutError):
            await commet.subscriptions.get("u")
    assert len(server.seen) == 3

    async with AsyncCommet(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}", retries=1, backoff_base=0.01
    ) as commet:
        with pytest.raises(CommetConnectionError) as info:
            await commet.features.check(code="x", customer_id="u")
    assert "2 attempts" in str(info.value)
    assert API_KEY not in caplog.text and API_KEY not in repr(commet)


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
async def test_a_dripping_server_cannot_hold_a_call_past_timeout(
    server: StateServer, drip_headers: bool
) -> None:
    server.enqueue(Reply(200, body=b" " * 400 + b"null", drip=0.1, drip_headers=drip_headers))
    async with AsyncCommet(api_key=API_KEY, base_url=server.url, timeout=1.0, retries=0) as c:
        with pytest.raises(CommetTimeoutError):
            await c.subscriptions.get("u")
    assert True not in server.finished


async def test_oversized_answer_and_deprecation(server: StateServer) -> None:
    server.enqueue(
        Reply(200, body=b'{"pad": "' + b"x" * 5000 + b'"}', length=-1),
        Reply(200, None, headers={"Deprecation": "true", "Link": "</api/v1/next>"}),
    )
    async with AsyncCommet(api_key=API_KEY, base_url=server.url, max_response_bytes=1024) as c:
        with pytest.raises(CommetAPIError) as info:
            await c.subscriptions.get("u")
        assert info.value.code == "response_too_large"
        with pytest.warns(DeprecationWarning, match="successor is /api/v1/next"):
            await c.subscriptions.get("u")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await c.subscriptions.get("u")


async def test_close_is_idempotent(server: StateServer) -> None:
    commet = AsyncCommet(api_key=API_KEY, base_url=server.url)
    await commet.subscriptions.get("u")
    await commet.aclose()
    await commet.close()
    with pytest.raises(RuntimeError, match="closed"):
        await commet.subscriptions.get("u")
