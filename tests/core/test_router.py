"""Router: handlers registered across modules, gathered into one Webhooks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from commet_webhooks import (
    MemoryStore,
    Outcome,
    PaymentFailed,
    Router,
    TrialStarted,
    WebhookEvent,
    Webhooks,
)
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_router_tests"
pytestmark = pytest.mark.anyio


def request(event_type: str, **overrides: Any) -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type, **overrides), SECRET)


async def test_routers_from_several_modules_all_run() -> None:
    calls: list[str] = []
    billing = Router(on_trial_started=lambda e: calls.append(f"billing:{e.event}"))
    emails = Router()

    @emails.on("payment.failed")
    async def dunning(event: PaymentFailed) -> None:
        calls.append(f"emails:{event.event}")

    @emails.on_payload
    def audit(event: WebhookEvent) -> None:
        calls.append(f"audit:{event.event}")

    webhooks = Webhooks(SECRET, routers=[billing, emails])
    assert (await webhooks.handle(*request("trial.started"))).status == 200
    assert (await webhooks.handle(*request("payment.failed"))).status == 200
    assert sorted(calls) == sorted(
        ["billing:trial.started", "audit:trial.started", "emails:payment.failed", "audit:payment.failed"]
    )


async def test_handlers_added_after_inclusion_and_nested_routers_count() -> None:
    seen: list[str] = []
    inner = Router()
    outer = Router(inner)
    webhooks = Webhooks(SECRET)
    webhooks.include_router(outer)
    # registered after the routers were included: still part of the plan
    inner.on("trial.started")(lambda e: seen.append("inner"))
    outer.on("trial.started")(lambda e: seen.append("outer"))
    assert len(webhooks.handlers_for("trial.started")) == 2
    response = await webhooks.handle(*request("trial.started"))
    assert response.status == 200 and sorted(seen) == ["inner", "outer"]
    assert isinstance(response.event, TrialStarted)


def test_cycles_and_bad_routers_are_refused() -> None:
    a = Router()
    b = Router(a)
    with pytest.raises(ValueError, match="cannot include itself"):
        a.include_router(b)
    with pytest.raises(ValueError, match="cannot include itself"):
        a.include_router(a)
    with pytest.raises(TypeError, match="takes a Router"):
        a.include_router(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="did you mean on_trial_started"):
        Router(on_trial_startd=print)  # type: ignore[call-arg]


async def test_a_failing_router_handler_is_a_handler_error_and_siblings_still_run() -> None:
    ran: list[str] = []

    def boom(event: WebhookEvent) -> None:
        raise RuntimeError("provisioning is down")

    webhooks = Webhooks(
        SECRET,
        routers=[Router(on_trial_started=boom), Router(on_trial_started=lambda e: ran.append("ok"))],
        idempotency_store=MemoryStore(),
        retry_on_handler_error=True,
    )
    body, headers = request("trial.started")
    response = await webhooks.handle(body, headers)
    assert response.status == 500 and response.outcome is Outcome.HANDLER_ERROR
    assert json.loads(response.body)["error"] == "1 handler(s) failed: RuntimeError"
    assert ran == ["ok"]
    # the claim was released: Commet's retry runs the handlers again
    assert (await webhooks.handle(body, headers)).status == 500 and ran == ["ok", "ok"]


async def test_every_answer_names_its_outcome() -> None:
    store = MemoryStore()
    webhooks = Webhooks(SECRET, idempotency_store=store, max_body_bytes=4096)
    body, headers = request("trial.started")
    first = await webhooks.handle(body, headers)
    assert first.outcome is Outcome.OK and isinstance(first.event, TrialStarted)
    again = await webhooks.handle(body, headers)
    assert again.outcome is Outcome.DUPLICATE and again.event is not None
    forged = dict(headers, **{"X-Commet-Signature": "0" * 64})
    assert (await webhooks.handle(body, forged)).outcome is Outcome.INVALID_SIGNATURE
    not_json = signed_request(b"{nope", SECRET)
    bad = await webhooks.handle(*not_json)
    assert bad.status == 400 and bad.outcome is Outcome.INVALID_PAYLOAD and bad.event is None
    assert (await webhooks.handle(b"x" * 5000, headers)).outcome is Outcome.TOO_LARGE
    assert webhooks.preflight("GET") is not None
    assert webhooks.preflight("GET").outcome is Outcome.NOT_ALLOWED  # type: ignore[union-attr]
    other = request("trial.started")
    assert store.claim(json.loads(other[0])["id"], "elsewhere").value == "claimed"
    assert (await webhooks.handle(*other)).outcome is Outcome.BUSY


async def test_sync_handlers_run_in_their_own_bounded_pool() -> None:
    """Store calls (asyncio's default executor) never queue behind slow sync handlers."""
    import threading
    import time

    names: set[str] = set()
    running = 0
    peak = 0
    lock = threading.Lock()

    def slow(event: WebhookEvent) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            names.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running -= 1

    webhooks = Webhooks(SECRET, on_trial_started=slow, handler_threads=3)
    results = await asyncio.gather(*(webhooks.handle(*request("trial.started")) for _ in range(9)))
    assert all(r.status == 200 for r in results)
    assert peak == 3
    assert all(name.startswith("commet-webhooks-handler") for name in names)
    with pytest.raises(ValueError, match="handler_threads"):
        Webhooks(SECRET, handler_threads=0)
