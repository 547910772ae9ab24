"""Long handlers on every store: the lease is renewed while they run, so they run once.

Issue: a handler ten times longer than its lease, with Commet's retries arriving while
it runs. Before renewal the retries took the expired lease and ran it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from store_helpers import StoreSpec

from commet_webhooks import LeaseLostError, Outcome, WebhookEvent, Webhooks
from commet_webhooks.stores import IdempotencyStore
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_renewal_tests"
LEASE = 0.3  # seconds; the handler takes ten times as long
KINDS = ["memory", "sqlite", "redis", "postgres"]
pytestmark = pytest.mark.anyio


def build(make_spec: Callable[[str], StoreSpec], kind: str, built: list[Any]) -> IdempotencyStore:
    store = make_spec(kind).build(lease_seconds=LEASE)
    built.append(store)
    return store


@pytest.mark.parametrize("kind", KINDS)
async def test_async_handler_ten_times_its_lease_runs_once(
    kind: str, make_spec: Callable[[str], StoreSpec], built: list[Any]
) -> None:
    runs: list[str] = []

    async def slow(event: WebhookEvent) -> None:
        runs.append(str(event.id))
        await asyncio.sleep(LEASE * 10)

    webhooks = Webhooks(SECRET, idempotency_store=build(make_spec, kind, built), on_payload=slow)
    body, headers = signed_request(sample_event("payment.failed"), SECRET)
    first = asyncio.ensure_future(webhooks.handle(body, headers))
    retries = []
    for _ in range(5):  # Commet's retries, well past the lease
        await asyncio.sleep(LEASE * 1.5)
        retries.append(await webhooks.handle(body, headers))
    assert (await first).outcome is Outcome.OK
    assert [r.outcome for r in retries] == [Outcome.BUSY] * 5
    assert all(r.status == 409 for r in retries)
    after = await webhooks.handle(body, headers)
    assert after.status == 200 and after.outcome is Outcome.DUPLICATE
    assert len(runs) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_sync_handler_ten_times_its_lease_runs_once(
    kind: str, make_spec: Callable[[str], StoreSpec], built: list[Any]
) -> None:
    runs: list[str] = []

    def slow(event: WebhookEvent) -> None:
        runs.append(str(event.id))
        time.sleep(LEASE * 10)

    webhooks = Webhooks(SECRET, idempotency_store=build(make_spec, kind, built), on_payload=slow)
    body, headers = signed_request(sample_event("payment.failed"), SECRET)
    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(webhooks.handle_sync(body, headers)))
    first.start()
    retries = []
    for _ in range(5):
        time.sleep(LEASE * 1.5)
        retries.append(webhooks.handle_sync(body, headers))
    first.join()
    assert answers[0].outcome is Outcome.OK
    assert [r.outcome for r in retries] == [Outcome.BUSY] * 5
    assert webhooks.handle_sync(body, headers).outcome is Outcome.DUPLICATE
    assert len(runs) == 1


async def test_a_lost_lease_is_logged_and_reported(
    make_spec: Callable[[str], StoreSpec], built: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    store = build(make_spec, "memory", built)
    errors: list[BaseException] = []
    stolen = asyncio.Event()

    async def slow(event: WebhookEvent) -> None:
        # Someone frees the key from under the running handler (an operator, a bug).
        key = str(event.id)
        owner = store._entries[key][0]  # type: ignore[attr-defined]  # MemoryStore internals
        assert store.release(key, owner)
        stolen.set()
        await asyncio.sleep(LEASE * 2)

    webhooks = Webhooks(
        SECRET,
        idempotency_store=store,
        on_payload=slow,
        on_error=lambda exc, subject: errors.append(exc),
    )
    with caplog.at_level(logging.WARNING, logger="commet_webhooks"):
        response = await webhooks.handle(*signed_request(sample_event("payment.failed"), SECRET))
    await asyncio.sleep(0.05)  # the report runs as its own task
    assert stolen.is_set() and response.status == 200
    assert any(isinstance(e, LeaseLostError) for e in errors)
    assert "expired while its handlers ran" in caplog.text


async def test_cancelled_handle_keeps_the_claim_while_a_sync_handler_still_runs(
    make_spec: Callable[[str], StoreSpec], built: list[Any]
) -> None:
    """asyncio.wait_for around handle() must not free the claim under a running thread."""
    store = build(make_spec, "sqlite", built)
    runs: list[str] = []
    started = threading.Event()

    def slow(event: WebhookEvent) -> None:
        runs.append(str(event.id))
        started.set()
        time.sleep(LEASE * 3)

    webhooks = Webhooks(SECRET, idempotency_store=store, on_payload=slow)
    body, headers = signed_request(sample_event("payment.failed"), SECRET)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(webhooks.handle(body, headers), timeout=LEASE / 2)
    assert started.is_set()
    # The thread still runs: a retry now must not run the handler concurrently.
    retry = await webhooks.handle(body, headers)
    assert retry.outcome is Outcome.BUSY and len(runs) == 1
    # Not renewed any more, the lease expires and Commet's later retry runs it again.
    await asyncio.sleep(LEASE * 4)
    later = await webhooks.handle(body, headers)
    assert later.outcome is Outcome.OK and len(runs) == 2
