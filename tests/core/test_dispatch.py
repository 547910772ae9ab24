"""Webhooks: every row of the response table, handler kinds, routing, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from commet_webhooks import (
    MemoryStore,
    PayloadError,
    PaymentFailed,
    StoreUnavailableError,
    SubscriptionActivated,
    UnknownEvent,
    WebhookEvent,
    WebhookResponse,
    Webhooks,
)
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.stores import Claim, IdempotencyStore
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_dispatch_tests"
pytestmark = pytest.mark.anyio


def request(event_type: str = "payment.failed", **overrides: Any) -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type, **overrides), SECRET)


def decoded(response: WebhookResponse) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    result: dict[str, Any] = json.loads(response.body)
    return result


# ---------------------------------------------------------------- construction


def test_empty_secret_is_refused() -> None:
    for bad in ("", "  ", [], [""]):
        with pytest.raises(ValueError):
            Webhooks(webhook_secret=bad)


def test_unknown_handler_keyword_lists_valid_ones() -> None:
    with pytest.raises(TypeError) as info:
        Webhooks(SECRET, on_payment_faild=print)  # type: ignore[call-arg]
    message = str(info.value)
    assert "on_payment_faild (did you mean on_payment_failed?)" in message
    assert "on_trial_started" in message


def test_every_registry_event_has_a_keyword() -> None:
    calls: list[str] = []
    kwargs = {
        spec.handler_keyword: (lambda e: calls.append(e.event)) for spec in EVENT_TYPES.values()
    }
    webhooks = Webhooks(SECRET, **kwargs)
    for name in EVENT_TYPES:
        assert webhooks.handle_sync(*request(name)).status == 200
    assert calls == list(EVENT_TYPES)


def test_repr_hides_secret() -> None:
    webhooks = Webhooks([SECRET, "whsec_other"], on_payment_failed=print)
    assert SECRET not in repr(webhooks) and "whsec_other" not in repr(webhooks)


def test_invalid_max_body_bytes() -> None:
    with pytest.raises(ValueError):
        Webhooks(SECRET, max_body_bytes=0)


# ---------------------------------------------------------------- response table


async def test_valid_signature_handlers_succeeded() -> None:
    seen: list[WebhookEvent] = []
    webhooks = Webhooks(SECRET, on_payment_failed=seen.append)
    response = await webhooks.handle(*request())
    assert response.status == 200 and decoded(response) == {"received": True}
    assert isinstance(seen[0], PaymentFailed)


async def test_duplicate_answers_200_duplicate_without_running() -> None:
    seen: list[str] = []
    webhooks = Webhooks(
        SECRET, on_payment_failed=lambda e: seen.append(e.id), idempotency_store=MemoryStore()
    )
    body, headers = request()
    first = await webhooks.handle(body, headers)
    again = await webhooks.handle(body, headers)
    again_sync = (await asyncio.to_thread(webhooks.handle_sync, body, headers))
    assert decoded(first) == {"received": True}
    assert decoded(again) == decoded(again_sync) == {"received": True, "duplicate": True}
    assert again.status == 200 and len(seen) == 1


async def test_handler_error_default_is_200_with_warning() -> None:
    def boom(event: PaymentFailed) -> None:
        raise RuntimeError("database is down")

    webhooks = Webhooks(SECRET, on_payment_failed=boom)
    response = await webhooks.handle(*request())
    body = decoded(response)
    assert response.status == 200 and body["received"] is True
    assert "RuntimeError" in body["warning"]
    assert "database is down" not in body["warning"]  # handler messages stay private


async def test_handler_error_with_retry_opt_in_is_500() -> None:
    async def boom(event: PaymentFailed) -> None:
        raise KeyError("x")

    webhooks = Webhooks(SECRET, on_payment_failed=boom, retry_on_handler_error=True)
    response = await webhooks.handle(*request())
    assert response.status == 500
    assert decoded(response)["received"] is False and "KeyError" in decoded(response)["error"]
    assert (await asyncio.to_thread(webhooks.handle_sync, *request())).status == 500


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Commet-Signature": ""},
        {"X-Commet-Signature": "0" * 64},
        {"X-Commet-Signature": "abc"},
        {"X-Commet-Signature": "ñ" * 64},
        {"X-Commet-Signature": "v1,abc"},
    ],
)
async def test_missing_or_wrong_signature_is_403(headers: dict[str, str]) -> None:
    ran: list[object] = []
    webhooks = Webhooks(
        SECRET,
        on_payment_failed=ran.append,
        on_payload=ran.append,
        on_error=lambda *a: ran.append(a),
    )
    body, _ = request()
    response = await webhooks.handle(body, headers)
    assert response.status == 403
    assert decoded(response) == {"received": False, "error": "Invalid signature"}
    assert (await asyncio.to_thread(webhooks.handle_sync, body, headers)).status == 403
    assert ran == []


async def test_signed_with_other_secret_is_403() -> None:
    webhooks = Webhooks(SECRET)
    body, headers = signed_request(sample_event("payment.failed"), "whsec_attacker")
    assert (await webhooks.handle(body, headers)).status == 403


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1]", b"null", b"\xff\xfe\xfd", b"{}", b'{"event":"payment.failed","data":{}}'],
)
async def test_signed_garbage_is_400(body: bytes) -> None:
    errors: list[tuple[BaseException, object]] = []
    ran: list[object] = []
    webhooks = Webhooks(
        SECRET, on_payload=ran.append, on_error=lambda exc, subject: errors.append((exc, subject))
    )
    signed_body, headers = signed_request(body, SECRET)
    response = await webhooks.handle(signed_body, headers)
    assert response.status == 400
    payload = decoded(response)
    assert payload["received"] is False and payload["error"] == "Invalid payload"
    assert payload["detail"]
    assert ran == []
    assert len(errors) == 1 and isinstance(errors[0][0], PayloadError) and errors[0][1] == body


async def test_wrong_field_type_is_accepted_raw_not_400() -> None:
    """An authentic event of a known type that does not fit its class is never a 400."""
    typed: list[WebhookEvent] = []
    raw: list[WebhookEvent] = []
    errors: list[tuple[BaseException, object]] = []
    webhooks = Webhooks(
        SECRET,
        on_subscription_activated=typed.append,
        on_payload=raw.append,
        on_error=lambda exc, subject: errors.append((exc, subject)),
    )
    response = await webhooks.handle(*request("subscription.activated", invoice_total="29.00"))
    assert response.status == 200 and response.outcome == "accepted_raw"
    assert "invoiceTotal" in decoded(response)["warning"]
    assert typed == []
    assert isinstance(raw[0], UnknownEvent) and raw[0].data["invoiceTotal"] == "29.00"
    assert raw[0].schema_error is not None and "invoiceTotal" in raw[0].schema_error
    assert isinstance(errors[0][0], PayloadError) and errors[0][1] is raw[0]


async def test_live_lease_elsewhere_is_409() -> None:
    store = MemoryStore(lease_seconds=30)
    webhooks = Webhooks(SECRET, on_payment_failed=lambda e: None, idempotency_store=store)
    body, headers = request()
    event_id = json.loads(body)["id"]
    assert store.claim(event_id, "another-worker") is Claim.CLAIMED
    response = await webhooks.handle(body, headers)
    assert response.status == 409 and decoded(response)["received"] is False
    assert "retry-after" in response.headers
    assert (await asyncio.to_thread(webhooks.handle_sync, body, headers)).status == 409


async def test_body_over_limit_is_413() -> None:
    ran: list[object] = []
    webhooks = Webhooks(SECRET, on_payload=ran.append, max_body_bytes=100)
    body, headers = request()
    assert len(body) > 100
    assert (await webhooks.handle(body, headers)).status == 413
    assert (await asyncio.to_thread(webhooks.handle_sync, body, headers)).status == 413
    assert ran == []


def test_preflight_405_and_declared_413() -> None:
    webhooks = Webhooks(SECRET, max_body_bytes=100)
    for method in ("GET", "PUT", "delete", "HEAD"):
        response = webhooks.preflight(method)
        assert (
            response is not None and response.status == 405 and response.headers["allow"] == "POST"
        )
    assert webhooks.preflight("POST") is None
    assert webhooks.preflight("post", "100") is None
    too_large = webhooks.preflight("POST", "101")
    assert too_large is not None and too_large.status == 413
    assert webhooks.preflight("POST", "not-a-number") is None
    assert webhooks.too_large().status == 413


async def test_unknown_event_reaches_catch_all_and_named_handlers_and_is_200() -> None:
    catch_all: list[WebhookEvent] = []
    named: list[WebhookEvent] = []
    webhooks = Webhooks(SECRET, on_payload=catch_all.append)
    webhooks.on("loyalty.points_awarded")(named.append)
    response = await webhooks.handle(
        *request("loyalty.points_awarded", data={"awardedAt": "soon", "x": [1]})
    )
    assert response.status == 200 and response.outcome == "ok"
    assert isinstance(catch_all[0], UnknownEvent) and catch_all[0].data == {
        "awardedAt": "soon",
        "x": [1],
    }
    assert named == catch_all
    # With no handler at all it is still accepted.
    assert (await Webhooks(SECRET).handle(*request("credits.granted"))).status == 200


async def test_store_outage_is_503_runs_nothing_and_reports() -> None:
    class DownStore(IdempotencyStore):
        def claim(self, key: str, owner: str) -> Claim:
            raise ConnectionError("connection refused")

        def complete(self, key: str, owner: str) -> bool:
            raise AssertionError("not reached")

        def release(self, key: str, owner: str) -> bool:
            raise AssertionError("not reached")

    ran: list[object] = []
    errors: list[tuple[BaseException, object]] = []
    webhooks = Webhooks(
        SECRET,
        on_payment_failed=ran.append,
        on_error=lambda exc, subject: errors.append((exc, subject)),
        idempotency_store=DownStore(),
    )
    body, headers = request()
    response = await webhooks.handle(body, headers)
    assert response.status == 503 and "retry-after" in response.headers
    assert (await asyncio.to_thread(webhooks.handle_sync, body, headers)).status == 503
    assert ran == []
    assert [type(e) for e, _ in errors] == [StoreUnavailableError, StoreUnavailableError]
    assert isinstance(errors[0][1], PaymentFailed)


# ---------------------------------------------------------------- handlers


async def test_sync_async_and_mixed_handlers_all_run() -> None:
    calls: list[str] = []

    def sync_handler(event: PaymentFailed) -> None:
        calls.append("sync")

    async def async_handler(event: PaymentFailed) -> None:
        calls.append("async")

    class CallableObject:
        async def __call__(self, event: WebhookEvent) -> None:
            calls.append("object")

    webhooks = Webhooks(SECRET, on_payment_failed=sync_handler, on_payload=CallableObject())
    webhooks.on("payment.failed")(async_handler)
    webhooks.on("payment.failed")(lambda e: calls.append("lambda"))
    assert (await webhooks.handle(*request())).status == 200
    assert sorted(calls) == ["async", "lambda", "object", "sync"]
    calls.clear()
    assert (await asyncio.to_thread(webhooks.handle_sync, *request())).status == 200
    assert sorted(calls) == ["async", "lambda", "object", "sync"]


async def test_handlers_for_and_decorator_returns_function() -> None:
    webhooks = Webhooks(SECRET)

    @webhooks.on("payment.failed")
    async def first(event: PaymentFailed) -> None: ...

    @webhooks.on_payload
    def everything(event: WebhookEvent) -> None: ...

    assert first.__name__ == "first"
    assert webhooks.handlers_for("payment.failed") == (first, everything)
    assert webhooks.handlers_for("invoice.created") == (everything,)
    with pytest.raises(ValueError):
        webhooks.on("")
    with pytest.raises(TypeError):
        webhooks.on("payment.failed")(42)  # type: ignore[arg-type]


async def test_catch_all_runs_concurrently_with_specific_handler() -> None:
    # Each handler waits for the other: only concurrent execution can finish.
    specific_started = asyncio.Event()
    catch_all_started = asyncio.Event()

    async def specific(event: PaymentFailed) -> None:
        specific_started.set()
        await asyncio.wait_for(catch_all_started.wait(), 5)

    async def catch_all(event: WebhookEvent) -> None:
        catch_all_started.set()
        await asyncio.wait_for(specific_started.wait(), 5)

    webhooks = Webhooks(SECRET, on_payment_failed=specific, on_payload=catch_all)
    response = await webhooks.handle(*request())
    assert decoded(response) == {"received": True}


async def test_one_failing_handler_does_not_stop_the_others() -> None:
    ran: list[str] = []

    async def boom(event: WebhookEvent) -> None:
        raise ValueError("bad")

    webhooks = Webhooks(
        SECRET, on_payment_failed=boom, on_payload=lambda e: ran.append("catch-all")
    )
    response = await webhooks.handle(*request())
    assert response.status == 200 and "warning" in decoded(response)
    assert ran == ["catch-all"]


async def test_sync_handler_does_not_block_the_event_loop() -> None:
    loop_ran = threading.Event()

    def slow_sync(event: PaymentFailed) -> None:
        # Waits for a coroutine on the loop: it can only run if the loop is free.
        if not loop_ran.wait(5):
            raise TimeoutError("event loop was blocked")

    async def tick() -> None:
        await asyncio.sleep(0.01)
        loop_ran.set()

    webhooks = Webhooks(SECRET, on_payment_failed=slow_sync, retry_on_handler_error=True)
    response, _ = await asyncio.gather(webhooks.handle(*request()), tick())
    assert response.status == 200


async def test_on_error_gets_exception_and_event_sync_and_async() -> None:
    reports: list[tuple[BaseException, object]] = []

    async def report(exc: BaseException, subject: object) -> None:
        reports.append((exc, subject))

    def boom(event: PaymentFailed) -> None:
        raise RuntimeError("boom")

    webhooks = Webhooks(SECRET, on_payment_failed=boom, on_error=report)
    await webhooks.handle(*request())
    (await asyncio.to_thread(webhooks.handle_sync, *request()))
    assert len(reports) == 2
    for exc, subject in reports:
        assert isinstance(exc, RuntimeError) and isinstance(subject, PaymentFailed)


async def test_raising_on_error_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    def bad_reporter(exc: BaseException, subject: object) -> None:
        raise OSError("reporter down")

    def boom(event: PaymentFailed) -> None:
        raise RuntimeError("boom")

    webhooks = Webhooks(SECRET, on_payment_failed=boom, on_error=bad_reporter)
    with caplog.at_level(logging.ERROR, logger="commet_webhooks"):
        assert (await webhooks.handle(*request())).status == 200
        assert (await asyncio.to_thread(webhooks.handle_sync, *request())).status == 200
    assert "on_error itself raised" in caplog.text


async def test_failed_handler_releases_claim_so_retry_runs_again() -> None:
    attempts: list[int] = []

    def flaky(event: PaymentFailed) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")

    webhooks = Webhooks(
        SECRET,
        on_payment_failed=flaky,
        idempotency_store=MemoryStore(),
        retry_on_handler_error=True,
    )
    body, headers = request()
    assert (await webhooks.handle(body, headers)).status == 500
    assert (await webhooks.handle(body, headers)).status == 200
    assert decoded(await webhooks.handle(body, headers)) == {"received": True, "duplicate": True}
    assert len(attempts) == 2


async def test_cancelled_handler_releases_claim() -> None:
    store = MemoryStore()
    started = asyncio.Event()

    async def hangs(event: PaymentFailed) -> None:
        started.set()
        await asyncio.sleep(60)

    webhooks = Webhooks(SECRET, on_payment_failed=hangs, idempotency_store=store)
    body, headers = request()
    task = asyncio.create_task(webhooks.handle(body, headers))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(store) == 0  # released: a retry can claim it at once
    assert store.claim(json.loads(body)["id"], "retry") is Claim.CLAIMED


# ---------------------------------------------------------------- keys and headers


@pytest.mark.parametrize("transform", [str.lower, str.upper, lambda s: s, str.title])
async def test_header_names_are_case_insensitive(transform: Any) -> None:
    seen: list[WebhookEvent] = []
    webhooks = Webhooks(SECRET, on_payment_failed=seen.append)
    body, headers = request()
    cased = {transform(k): v for k, v in headers.items()}
    assert (await webhooks.handle(body, cased)).status == 200
    assert len(seen) == 1


async def test_bytes_headers_and_str_body_are_accepted() -> None:
    webhooks = Webhooks(SECRET)
    body, headers = request()
    raw_headers = {k.lower().encode(): v.encode() for k, v in headers.items()}
    assert (await webhooks.handle(body, raw_headers)).status == 200  # type: ignore[arg-type]
    assert (await webhooks.handle(body.decode(), headers)).status == 200
    assert (await webhooks.handle(bytearray(body), headers)).status == 200
    assert (await webhooks.handle(memoryview(body), headers)).status == 200


async def test_idempotency_key_is_the_signed_id_else_the_body_hash() -> None:
    """The unsigned X-Commet-Event-Id header never becomes a key (SECURITY.md)."""
    import hashlib

    ran: list[WebhookEvent] = []
    store = MemoryStore()
    webhooks = Webhooks(SECRET, idempotency_store=store, on_payment_failed=ran.append)
    real = sample_event("payment.failed")
    # A captured id-less body replayed with the real event's id in the header...
    legacy = sample_event("payment.failed")
    del legacy["id"]
    body, headers = signed_request(legacy, SECRET, headers={"X-Commet-Event-Id": real["id"]})
    assert (await webhooks.handle(body, headers)).status == 200
    assert store.claim(hashlib.sha256(body).hexdigest(), "x") is Claim.DONE
    # ...cannot pre-claim the real event: it still runs.
    response = await webhooks.handle(*signed_request(real, SECRET))
    assert response.status == 200 and response.outcome == "ok"
    assert len(ran) == 2
    # Retries of the id-less body (same bytes) are duplicates, whatever the header says.
    headers["X-Commet-Event-Id"] = "whev_something_else"
    again = await webhooks.handle(body, headers)
    assert again.status == 200 and again.outcome == "duplicate" and len(ran) == 2


async def test_rotation_accepts_both_secrets() -> None:
    webhooks = Webhooks(["whsec_new", SECRET])
    assert (await webhooks.handle(*request())).status == 200
    body, headers = signed_request(sample_event("payment.failed"), "whsec_new")
    assert (await webhooks.handle(body, headers)).status == 200


# ---------------------------------------------------------------- handle_sync contexts


async def test_handle_sync_from_worker_thread_while_loop_runs_elsewhere() -> None:
    seen: list[str] = []

    async def async_handler(event: SubscriptionActivated) -> None:
        await asyncio.sleep(0)
        seen.append(event.event)

    webhooks = Webhooks(SECRET, on_subscription_activated=async_handler)
    response = await asyncio.to_thread(webhooks.handle_sync, *request("subscription.activated"))
    assert response.status == 200 and seen == ["subscription.activated"]


async def test_handle_sync_inside_a_running_loop_is_refused_clearly() -> None:
    """From a coroutine, handle_sync would freeze the loop: it says to await handle()."""
    seen: list[str] = []

    async def async_handler(event: PaymentFailed) -> None:
        seen.append(event.event)

    webhooks = Webhooks(SECRET, on_payment_failed=async_handler)
    with pytest.raises(RuntimeError, match=r"await webhooks\.handle"):
        webhooks.handle_sync(*request())
    assert seen == []
    # From a worker thread of the same process it is fine.
    assert (await asyncio.to_thread(webhooks.handle_sync, *request())).status == 200
    assert seen == ["payment.failed"]


def test_handle_sync_many_threads() -> None:
    counter: list[int] = []
    lock = threading.Lock()

    async def async_handler(event: PaymentFailed) -> None:
        with lock:
            counter.append(1)

    webhooks = Webhooks(SECRET, on_payment_failed=async_handler)
    requests = [request() for _ in range(40)]
    results: list[int] = []

    def worker(items: list[tuple[bytes, Mapping[str, str]]]) -> None:
        for body, headers in items:
            results.append(webhooks.handle_sync(body, headers).status)

    threads = [threading.Thread(target=worker, args=(requests[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(200) == 40 and len(counter) == 40


# ---------------------------------------------------------------- tolerance


async def test_tolerance_rejects_old_events_when_enabled() -> None:
    body, headers = request(timestamp="2020-01-01T00:00:00Z")
    assert (await Webhooks(SECRET).handle(body, headers)).status == 200  # off by default
    strict = Webhooks(SECRET, tolerance=300)
    response = await strict.handle(body, headers)
    assert response.status == 400 and "tolerance" in decoded(response)["detail"]
    assert (await strict.handle(*request())).status == 200
    with pytest.raises(ValueError):
        Webhooks(SECRET, tolerance=0)


async def test_logs_never_contain_secret_or_body(caplog: pytest.LogCaptureFixture) -> None:
    webhooks = Webhooks(SECRET, on_payment_failed=lambda e: 1 / 0)
    body, headers = request(customer_email="private@example.com")
    with caplog.at_level(logging.DEBUG, logger="commet_webhooks"):
        await webhooks.handle(body, headers)
        await webhooks.handle(body, {"X-Commet-Signature": "0" * 64})
        await webhooks.handle(*signed_request(b"[1]", SECRET))
    assert caplog.records
    assert SECRET not in caplog.text and "private@example.com" not in caplog.text


async def test_lease_lost_during_handlers_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A store that cannot renew (written against the earlier protocol) still warns.

    Bundled stores renew while handlers run (tests/stores/test_renewal.py).
    """

    class WithoutRenewal(MemoryStore):
        renew = None  # type: ignore[assignment]

    store = WithoutRenewal(lease_seconds=0.05)
    body, headers = request()
    event_id = json.loads(body)["id"]
    taken_over = asyncio.Event()

    async def slow(event: PaymentFailed) -> None:
        for _ in range(500):  # bounded: the lease expires, then another worker claims it
            await asyncio.sleep(0.01)
            if store.claim(event_id, "another-worker") is Claim.CLAIMED:
                taken_over.set()
                return

    webhooks = Webhooks(SECRET, on_payment_failed=slow, idempotency_store=store)
    with caplog.at_level(logging.WARNING, logger="commet_webhooks"):
        response = await webhooks.handle(body, headers)
    assert taken_over.is_set() and response.status == 200
    assert "lease" in caplog.text and "expired" in caplog.text


def test_typed_keywords_match_the_registry() -> None:
    from commet_webhooks.dispatch import HandlerKeywords

    assert set(HandlerKeywords.__annotations__) == {s.handler_keyword for s in EVENT_TYPES.values()}
