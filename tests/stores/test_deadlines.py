"""Every store call ends within about its timeout: on a dead network and under locks.

Faults are made here and nowhere else: a TCP proxy this test starts and then
black-holes (it keeps connections open but forwards nothing, as a pulled cable does),
and locks held by another connection of the test. The shared servers keep running.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from store_helpers import POSTGRES_DSN, StoreSpec, TcpProxy, free_port

from commet_webhooks import StoreUnavailableError, Webhooks
from commet_webhooks.stores import Claim, IdempotencyStore
from commet_webhooks.testing import sample_event, signed_request

pytestmark = pytest.mark.anyio

SERVER_PORTS = {"redis": 6379, "postgres": 5432}
TIMEOUT = 2.0
# "Within about the timeout", on a busy machine: well under Commet's 10 s, and under
# what this guards against (a call waiting for ever, or one timeout after another).
BOUND = TIMEOUT * 1.75


@pytest.fixture
def proxied(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> Iterator[Callable[[str], tuple[IdempotencyStore, TcpProxy]]]:
    """A network store of ``kind`` reached through a proxy this test controls."""
    proxies: list[TcpProxy] = []

    def make(kind: str) -> tuple[IdempotencyStore, TcpProxy]:
        proxy = TcpProxy(free_port(), SERVER_PORTS[kind])
        proxy.start()
        proxies.append(proxy)
        if kind == "redis":
            target = f"redis://127.0.0.1:{proxy.port}/0"
        else:
            target = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        return build(make_spec(kind).at(target), timeout=TIMEOUT), proxy

    yield make
    for proxy in proxies:
        proxy.stop()


async def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``call()`` (sync, or returning an awaitable) took, and its outcome."""
    began = time.monotonic()
    try:
        outcome = call()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
    except Exception as exc:
        outcome = exc
    return time.monotonic() - began, outcome


async def until_answered(call: Callable[[], Any], within: float = 15.0) -> Any:
    """``call()``'s first outcome that is not StoreUnavailableError."""
    deadline = time.monotonic() + within
    while True:
        _, outcome = await timed(call)
        if not isinstance(outcome, StoreUnavailableError):
            return outcome
        assert time.monotonic() < deadline, f"still unavailable after {within}s: {outcome}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("kind", ["redis", "postgres"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_black_holed_network_answers_unavailable_in_time(
    kind: str, mode: str, proxied: Callable[[str], tuple[IdempotencyStore, TcpProxy]]
) -> None:
    store, proxy = proxied(kind)
    claim = store.claim if mode == "sync" else store.aclaim
    complete = store.complete if mode == "sync" else store.acomplete
    try:
        assert (await timed(lambda: claim("evt_before", "a")))[1] is Claim.CLAIMED
        proxy.black_hole()
        # A pooled connection that stops answering mid-call, then a fresh one.
        for key in ("evt_hole_1", "evt_hole_2"):
            elapsed, outcome = await timed(lambda key=key: claim(key, "a"))
            assert isinstance(outcome, StoreUnavailableError), outcome
            assert elapsed < BOUND
        elapsed, outcome = await timed(lambda: complete("evt_before", "a"))
        assert isinstance(outcome, StoreUnavailableError)
        assert elapsed < BOUND
        proxy.black_hole(False)
        # The silent connections were discarded: the store works again once new
        # connections are made (the pool may be between reconnection attempts).
        assert await until_answered(lambda: complete("evt_before", "a")) is True
        assert (await timed(lambda: claim("evt_before", "b")))[1] is Claim.DONE
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
@pytest.mark.parametrize("entry", ["handle", "handle_sync"])
async def test_black_hole_under_the_dispatcher_is_a_503(
    kind: str,
    entry: str,
    proxied: Callable[[str], tuple[IdempotencyStore, TcpProxy]],
    secret: str,
) -> None:
    store, proxy = proxied(kind)
    runs: list[str] = []
    webhooks = Webhooks(
        secret, on_payload=lambda event: runs.append(event.id), idempotency_store=store
    )
    event = sample_event("payment.failed")
    body, headers = signed_request(event, secret)

    async def deliver() -> tuple[int, Any]:
        if entry == "handle":
            response = await webhooks.handle(body, headers)
        else:
            response = await asyncio.to_thread(webhooks.handle_sync, body, headers)
        return response.status, json.loads(response.body)

    async def deliver_or_raise() -> tuple[int, Any]:
        status, answer = await deliver()
        if status == 503:
            raise StoreUnavailableError("still 503")
        return status, answer

    try:
        warm = sample_event("invoice.created")
        if entry == "handle":
            await webhooks.handle(*signed_request(warm, secret))
        else:
            await asyncio.to_thread(webhooks.handle_sync, *signed_request(warm, secret))
        proxy.black_hole()
        elapsed, (status, _) = await timed(deliver)
        assert status == 503
        assert elapsed < BOUND
        assert event["id"] not in runs
        proxy.black_hole(False)
        answer = await until_answered(deliver_or_raise)
        assert answer == (200, {"received": True})
        assert runs.count(event["id"]) == 1
    finally:
        await store.aclose()


@pytest.fixture
def locker(pg_schema: str) -> Iterator[psycopg.Connection[Any]]:
    """Another PostgreSQL session, in a transaction, for the test to take locks with."""
    with psycopg.connect(POSTGRES_DSN) as conn:
        conn.execute(f"SET search_path TO {pg_schema}")
        yield conn
        conn.rollback()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_postgres_table_lock_ends_in_lock_timeout(
    mode: str,
    make_spec: Callable[[str], StoreSpec],
    build: Callable[..., IdempotencyStore],
    locker: psycopg.Connection[Any],
) -> None:
    spec = make_spec("postgres")
    store = build(spec, timeout=TIMEOUT)
    claim = store.claim if mode == "sync" else store.aclaim
    try:
        assert (await timed(lambda: claim("evt_free", "a")))[1] is Claim.CLAIMED
        locker.execute(f'LOCK TABLE "{spec.options["table"]}" IN ACCESS EXCLUSIVE MODE')
        elapsed, outcome = await timed(lambda: claim("evt_locked", "a"))
        assert isinstance(outcome, StoreUnavailableError), outcome
        # Ended by the server (the connection stays healthy), not by cutting it.
        assert "lock timeout" in str(outcome) or "statement timeout" in str(outcome)
        assert elapsed < BOUND
        locker.rollback()
        # The connection that timed out is healthy and in use again.
        assert (await timed(lambda: claim("evt_locked", "a")))[1] is Claim.CLAIMED
    finally:
        await store.aclose()


async def test_postgres_row_lock_ends_in_lock_timeout(
    make_spec: Callable[[str], StoreSpec],
    build: Callable[..., IdempotencyStore],
    locker: psycopg.Connection[Any],
) -> None:
    spec = make_spec("postgres")
    store = build(spec, timeout=TIMEOUT)
    try:
        assert store.claim("evt_row", "a") is Claim.CLAIMED
        locker.execute(
            f"SELECT 1 FROM \"{spec.options['table']}\" WHERE key = 'evt_row' FOR UPDATE"
        )
        elapsed, outcome = await timed(lambda: store.acomplete("evt_row", "a"))
        assert isinstance(outcome, StoreUnavailableError), outcome
        assert elapsed < BOUND
        locker.rollback()
        # The server cancelled the waiting statement: it did not land after the error.
        assert await store.acomplete("evt_row", "a") is True
    finally:
        await store.aclose()


def test_sqlite_busy_timeout_bounds_the_whole_call(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    """Threads queueing for the store's connection share one budget, not one each."""
    spec = make_spec("sqlite")
    busy = 1.0
    store = build(spec, busy_timeout=busy)
    assert store.claim("evt_warm", "a") is Claim.CLAIMED
    external = sqlite3.connect(spec.target, isolation_level=None)
    external.execute("BEGIN EXCLUSIVE")
    results: list[tuple[float, Any]] = []

    def call(n: int) -> None:
        began = time.monotonic()
        try:
            outcome: Any = store.claim(f"evt_{n}", "a")
        except StoreUnavailableError as exc:
            outcome = exc
        results.append((time.monotonic() - began, outcome))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(3)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        external.execute("COMMIT")
        external.close()
    assert len(results) == 3
    for elapsed, outcome in results:
        assert isinstance(outcome, StoreUnavailableError)
        # Before: the second thread waited busy_timeout for the first, then as long again.
        assert elapsed < busy * 1.75
    assert store.claim("evt_0", "a") is Claim.CLAIMED


def test_postgres_sessions_carry_the_timeouts_and_keep_the_dsns_options(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("postgres")
    target = f"{POSTGRES_DSN}?options=-csynchronous_commit%3Doff&application_name=keys"
    store: Any = build(spec.at(target), timeout=2.5)
    assert store.claim("evt_settings", "a") is Claim.CLAIMED
    with store._sync_pool().connection() as conn:  # a connection the store uses
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("statement_timeout", "lock_timeout", "synchronous_commit")
        }
        assert conn.info.get_parameters()["application_name"] == "keys"
    assert settings == {
        "statement_timeout": "2s",  # 80% of timeout
        "lock_timeout": "2s",
        "synchronous_commit": "off",  # the DSN's own options are kept
    }
