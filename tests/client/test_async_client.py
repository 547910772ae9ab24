"""``AsyncCommet`` against the same real HTTP server."""

from __future__ import annotations

import logging

import anyio
import pytest

from commet_webhooks import AsyncCommet, CommetAPIError, CommetValidationError
from commet_webhooks.client import CommetConnectionError, CommetTimeoutError

from .conftest import API_KEY, Reply, StateServer, free_port, subscription

pytestmark = pytest.mark.anyio


async def test_subscription_and_features(server: StateServer) -> None:
    server.subscriptions["user_123"] = subscription("user_123", status="trialing")
    server.features[("user_123", "seats")] = {
        "code": "seats",
        "type": "seats",
        "allowed": True,
        "current": 3,
        "included": 5,
    }
    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:
        sub = await commet.subscriptions.get("user_123")
        chk = await commet.features.check(code="seats", customer_id="user_123")
        full = await commet.features.get(code="seats", customer_id="user_123")
        none = await commet.subscriptions.get("someone_else")
    assert sub.data is not None and sub.data.is_active and sub.data.status == "trialing"
    assert chk.data.allowed is True
    assert (full.data.current, full.data.included) == (3, 5)
    assert none.success and none.data is None
    assert [s.raw_path for s in server.seen] == [
        "/api/subscriptions/active",
        "/api/features/seats",
        "/api/features/seats",
        "/api/subscriptions/active",
    ]
    assert {s.headers["x-api-key"] for s in server.seen} == {API_KEY}
    assert len({s.client_port for s in server.seen}) == 1  # one reused connection


async def test_many_concurrent_calls_share_one_client(server: StateServer) -> None:
    customers = [f"user_{i}" for i in range(60)]
    for c in customers:
        server.subscriptions[c] = subscription(c)
    server.default_delay = 1.0  # keep requests in flight together
    results: dict[str, str | None] = {}

    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:

        async def fetch(customer: str) -> None:
            sub = await commet.subscriptions.get(customer)
            results[customer] = sub.data.customer_id if sub.data else None

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for c in customers:
                    tg.start_soon(fetch, c)

    assert results == {c: c for c in customers}
    assert len(server.seen) == len(customers)
    assert server.max_in_flight >= 10


async def test_errors_and_validation(server: StateServer) -> None:
    server.enqueue(
        Reply(
            400,
            {
                "success": False,
                "code": "validation_error",
                "message": "Bad",
                "details": [{"field": "customerId", "message": "Required"}],
            },
        )
    )
    async with AsyncCommet(api_key=API_KEY, base_url=server.url) as commet:
        with pytest.raises(CommetValidationError) as info:
            await commet.subscriptions.get("u")
        assert info.value.errors == {"customerId": ["Required"]}
        with pytest.raises(CommetAPIError) as info404:
            await commet.features.check(code="ghost", customer_id="u")
        assert info404.value.code == "not_found"
        with pytest.raises(ValueError):
            await commet.features.check(code="", customer_id="u")
    async with AsyncCommet(api_key="ck_wrong", base_url=server.url) as commet:
        with pytest.raises(CommetAPIError) as info401:
            await commet.subscriptions.get("u")
    assert info401.value.status_code == 401


async def test_retries_with_retry_after_then_gives_up(server: StateServer) -> None:
    server.enqueue(Reply(429, headers={"Retry-After": "1"}), Reply(502), Reply(504), Reply(503))
    async with AsyncCommet(
        api_key=API_KEY, base_url=server.url, retries=3, backoff_base=0.01
    ) as commet:
        with pytest.raises(CommetAPIError) as info:
            await commet.subscriptions.get("u")
    assert info.value.status_code == 503
    assert len(server.seen) == 4
    assert server.seen[1].at - server.seen[0].at >= 0.9


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


async def test_close_is_idempotent(server: StateServer) -> None:
    commet = AsyncCommet(api_key=API_KEY, base_url=server.url)
    await commet.subscriptions.get("u")
    await commet.aclose()
    await commet.close()
    with pytest.raises(RuntimeError, match="closed"):
        await commet.subscriptions.get("u")
