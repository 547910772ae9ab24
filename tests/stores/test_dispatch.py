"""Each store behind ``Webhooks``: duplicates, failing handlers, leases held elsewhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from store_helpers import StoreSpec

from commet_webhooks import WebhookResponse, Webhooks
from commet_webhooks.stores import Claim, IdempotencyStore
from commet_webhooks.testing import sample_event, signed_request

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["handle", "handle_sync"])
def entry(request: Any) -> str:
    return str(request.param)


async def deliver(webhooks: Webhooks, entry: str, body: bytes, headers: dict[str, str]) -> Any:
    if entry == "handle":
        response: WebhookResponse = await webhooks.handle(body, headers)
    else:
        response = (await asyncio.to_thread(webhooks.handle_sync, body, headers))
    return response.status, json.loads(response.body)


async def test_duplicates_answer_200_duplicate(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], entry: str, secret: str
) -> None:
    store = build(spec)
    runs: list[str | None] = []
    webhooks = Webhooks(
        secret, on_payment_failed=lambda e: runs.append(e.id), idempotency_store=store
    )
    body, headers = signed_request(sample_event("payment.failed"), secret)
    try:
        assert await deliver(webhooks, entry, body, headers) == (200, {"received": True})
        for _ in range(3):
            assert await deliver(webhooks, entry, body, headers) == (
                200,
                {"received": True, "duplicate": True},
            )
        assert len(runs) == 1
    finally:
        await store.aclose()


async def test_body_hash_is_the_key_without_an_event_id(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], entry: str, secret: str
) -> None:
    store = build(spec)
    runs: list[object] = []
    webhooks = Webhooks(secret, on_payload=runs.append, idempotency_store=store)
    envelope = sample_event("invoice.created")
    del envelope["id"]
    body, headers = signed_request(envelope, secret)
    other_body, other_headers = signed_request({**envelope, "organizationId": "org_2"}, secret)
    try:
        assert (await deliver(webhooks, entry, body, headers))[1] == {"received": True}
        assert (await deliver(webhooks, entry, body, headers))[1]["duplicate"] is True
        assert (await deliver(webhooks, entry, other_body, other_headers))[1] == {"received": True}
        assert len(runs) == 2
    finally:
        await store.aclose()


@pytest.mark.parametrize("retry_on_handler_error", [True, False])
async def test_failing_handler_is_released_and_the_retry_runs_once(
    spec: StoreSpec,
    build: Callable[..., IdempotencyStore],
    entry: str,
    secret: str,
    retry_on_handler_error: bool,
) -> None:
    store = build(spec)
    attempts: list[str] = []
    succeeded: list[str] = []
    errors: list[BaseException] = []

    def grant(event: Any) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("database hiccup")
        succeeded.append(event.id)

    webhooks = Webhooks(
        secret,
        on_subscription_activated=grant,
        on_error=lambda exc, subject: errors.append(exc),
        idempotency_store=store,
        retry_on_handler_error=retry_on_handler_error,
    )
    body, headers = signed_request(sample_event("subscription.activated"), secret)
    try:
        status, answer = await deliver(webhooks, entry, body, headers)
        assert status == (500 if retry_on_handler_error else 200)
        assert "RuntimeError" in (answer.get("error") or answer.get("warning"))
        assert [type(e) for e in errors] == [RuntimeError]
        assert await deliver(webhooks, entry, body, headers) == (200, {"received": True})
        assert (await deliver(webhooks, entry, body, headers))[1]["duplicate"] is True
        assert len(attempts) == 2
        assert len(succeeded) == 1
    finally:
        await store.aclose()


async def test_live_lease_elsewhere_answers_409(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], entry: str, secret: str
) -> None:
    store = build(spec)
    runs: list[object] = []
    webhooks = Webhooks(secret, on_payload=runs.append, idempotency_store=store)
    envelope = sample_event("subscription.canceled")
    body, headers = signed_request(envelope, secret)
    try:
        assert store.claim(envelope["id"], "another-worker") is Claim.CLAIMED
        status, answer = await deliver(webhooks, entry, body, headers)
        assert status == 409
        assert answer["received"] is False
        assert runs == []
        # The other worker gives up: Commet's next retry runs the handlers.
        assert store.release(envelope["id"], "another-worker") is True
        assert await deliver(webhooks, entry, body, headers) == (200, {"received": True})
        assert len(runs) == 1
    finally:
        await store.aclose()


async def test_unknown_event_types_are_deduplicated_too(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], entry: str, secret: str
) -> None:
    store = build(spec)
    runs: list[object] = []
    webhooks = Webhooks(secret, on_payload=runs.append, idempotency_store=store)
    body, headers = signed_request(sample_event("loyalty.points_awarded", data={"amount": 5}), secret)
    try:
        assert await deliver(webhooks, entry, body, headers) == (200, {"received": True})
        assert (await deliver(webhooks, entry, body, headers))[1]["duplicate"] is True
        assert len(runs) == 1
    finally:
        await store.aclose()
