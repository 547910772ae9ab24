"""The ordering guard, one process: stale events skipped, the rule's edges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from commet_webhooks import Webhooks
from commet_webhooks.inbox import InboxStore, OrderingGuard, Status, is_stale, resource_of
from commet_webhooks.testing import sample_event, signed_request


def _event(event_id: str, minute: int, **data: Any) -> dict[str, Any]:
    data.setdefault("subscription_id", "sub_1")
    return sample_event(
        "subscription.updated",
        id=event_id,
        timestamp=f"2026-03-01T10:{minute:02d}:00.000Z",
        **data,
    )


def test_an_older_event_after_a_newer_one_is_skipped_and_answered_200(
    inbox: InboxStore, secret: str
) -> None:
    guard = OrderingGuard(inbox)
    applied: list[str] = []
    seen_stale: list[bool | None] = []
    webhooks = Webhooks(secret, idempotency_store=inbox)
    webhooks.on("subscription.updated")(guard(lambda e: applied.append(e.id)))

    @webhooks.on_payload
    def audit(event: Any) -> None:  # unguarded: runs, and can ask the guard (read-only)
        seen_stale.append(guard.is_stale(event))

    assert webhooks.handle_sync(*signed_request(_event("evt_new", 30), secret)).status == 200
    stale = webhooks.handle_sync(*signed_request(_event("evt_old", 10), secret))

    assert stale.status == 200 and stale.outcome.value == "ok"
    assert applied == ["evt_new"]
    assert is_stale(webhooks_event(_event("evt_x", 1), secret)) is None  # not checked yet
    assert inbox.get("evt_old").status is Status.SKIPPED  # type: ignore[union-attr]
    assert inbox.get("evt_new").status is Status.DONE  # type: ignore[union-attr]
    assert guard.is_stale(webhooks_event(_event("evt_old", 10), secret))
    assert not guard.is_stale(webhooks_event(_event("evt_newer", 40), secret))
    assert seen_stale == [False, True]

    # Newer events still apply; the same timestamp is not stale (the documented limit).
    webhooks.handle_sync(*signed_request(_event("evt_newest", 50), secret))
    webhooks.handle_sync(*signed_request(_event("evt_same", 50), secret))
    assert applied == ["evt_new", "evt_newest", "evt_same"]


def webhooks_event(envelope: dict[str, Any], secret: str) -> Any:
    from commet_webhooks.events import decode_event

    body, _ = signed_request(envelope, secret)
    return decode_event(body)


def test_resources_are_subscription_else_customer_per_organization(secret: str) -> None:
    by_sub = webhooks_event(_event("e1", 1, subscription_id="sub_9"), secret)
    assert resource_of(by_sub) == f"{by_sub.organization_id}/sub:sub_9"
    customer_only = webhooks_event(
        sample_event("payment_link.created", id="e2", customer_id="cus_7"), secret
    )
    assert resource_of(customer_only) == f"{customer_only.organization_id}/cus:cus_7"
    no_subscription = webhooks_event(
        sample_event("payment.failed", id="e4", customer_id="cus_8", subscription_id=None), secret
    )
    assert resource_of(no_subscription) == f"{no_subscription.organization_id}/cus:cus_8"
    nothing = webhooks_event(sample_event("custom.thing", id="e3", data={"x": 1}), secret)
    assert resource_of(nothing) is None


def test_events_of_other_resources_do_not_interfere(inbox: InboxStore, secret: str) -> None:
    guard = OrderingGuard(inbox)
    applied: list[str] = []
    webhooks = Webhooks(secret, idempotency_store=inbox)
    webhooks.on("subscription.updated")(guard(lambda e: applied.append(e.id)))
    webhooks.handle_sync(*signed_request(_event("a_new", 30, subscription_id="sub_a"), secret))
    webhooks.handle_sync(*signed_request(_event("b_old", 10, subscription_id="sub_b"), secret))
    assert applied == ["a_new", "b_old"]


def test_a_failed_newer_event_is_replayed_and_older_ones_stay_skipped(
    inbox: InboxStore, secret: str
) -> None:
    from commet_webhooks.inbox import Filter, replay

    guard = OrderingGuard(inbox)
    applied: list[str] = []
    broken = {"on": True}

    def apply(event: Any) -> None:
        if broken["on"]:
            raise RuntimeError("bug")
        applied.append(event.id)

    webhooks = Webhooks(secret, idempotency_store=inbox)
    webhooks.on("subscription.updated")(guard(apply))
    webhooks.handle_sync(*signed_request(_event("n", 30), secret))
    broken["on"] = False
    webhooks.handle_sync(*signed_request(_event("o", 10), secret))
    assert inbox.get("o").status is Status.SKIPPED  # type: ignore[union-attr]
    assert replay(webhooks, Filter(status="failed")).ok
    assert applied == ["n"]


def test_async_guarded_handlers(inbox: InboxStore, secret: str) -> None:
    guard = OrderingGuard(inbox)
    applied: list[str] = []

    @guard
    async def apply(event: Any) -> None:
        applied.append(event.id)

    webhooks = Webhooks(secret, idempotency_store=inbox)
    webhooks.on("subscription.updated")(apply)

    async def run() -> None:
        try:
            await webhooks.handle(*signed_request(_event("new", 30), secret))
            await webhooks.handle(*signed_request(_event("old", 10), secret))
        finally:
            await inbox.aclose()

    asyncio.run(run())
    assert applied == ["new"]
    assert inbox.get("old").status is Status.SKIPPED  # type: ignore[union-attr]


def test_the_guard_needs_an_inbox() -> None:
    from commet_webhooks.stores import MemoryStore

    with pytest.raises(TypeError, match="inbox"):
        OrderingGuard(MemoryStore())  # type: ignore[arg-type]
