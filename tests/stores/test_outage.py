"""A store that cannot be reached answers 503, reports it, runs nothing, loses nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import StoreSpec, TcpProxy, free_port

from commet_webhooks import StoreUnavailableError, Webhooks
from commet_webhooks.stores import IdempotencyStore
from commet_webhooks.testing import sample_event, signed_request

pytestmark = pytest.mark.anyio

PASSWORD = "s3cr3t-Pa55"
SERVER_PORTS = {"redis": 6379, "postgres": 5432}


@pytest.fixture(params=["handle", "handle_sync"])
def entry(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def proxy() -> Iterator[Callable[[int], TcpProxy]]:
    """Proxies in front of the real servers, stopped (port closed) until started."""
    made: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        made.append(TcpProxy(free_port(), target_port))
        return made[-1]

    yield make
    for p in made:
        p.stop()


class Receiver:
    """A ``Webhooks`` whose handler and ``on_error`` record what they saw."""

    def __init__(self, secret: str, store: IdempotencyStore, entry: str) -> None:
        self.runs: list[str] = []
        self.errors: list[tuple[BaseException, object]] = []
        self.entry = entry
        self.webhooks = Webhooks(
            secret,
            on_payload=lambda event: self.runs.append(event.id),
            on_error=lambda exc, subject: self.errors.append((exc, subject)),
            idempotency_store=store,
        )

    async def deliver(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        if self.entry == "handle":
            response = await self.webhooks.handle(body, headers)
        else:
            response = await asyncio.to_thread(self.webhooks.handle_sync, body, headers)
        return response.status, json.loads(response.body)


def assert_unavailable(receiver: Receiver, answer: tuple[int, Any], event_id: str) -> None:
    status, body = answer
    assert status == 503
    assert body["received"] is False
    assert event_id not in receiver.runs
    [(error, subject)] = receiver.errors
    assert isinstance(error, StoreUnavailableError)
    assert getattr(subject, "id", None) == event_id
    assert PASSWORD not in str(error)
    receiver.errors.clear()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_server_down_then_back(
    kind: str,
    make_spec: Callable[[str], StoreSpec],
    build: Callable[..., IdempotencyStore],
    proxy: Callable[[int], TcpProxy],
    entry: str,
    secret: str,
) -> None:
    gate = proxy(SERVER_PORTS[kind])
    if kind == "redis":
        target = f"redis://127.0.0.1:{gate.port}/0"
    else:  # the server trusts local connections, so the password is only carried along
        target = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{gate.port}/test"
    store = build(make_spec(kind).at(target), timeout=2)
    receiver = Receiver(secret, store, entry)
    first = sample_event("payment.received")
    second = sample_event("payment.failed")
    try:
        # Never reachable: nothing runs, nothing is lost.
        assert_unavailable(
            receiver, await receiver.deliver(*signed_request(first, secret)), first["id"]
        )
        gate.start()
        assert await receiver.deliver(*signed_request(first, secret)) == (200, {"received": True})
        assert receiver.runs == [first["id"]]
        # Goes away after connections were made: pooled connections are cut.
        gate.stop()
        assert_unavailable(
            receiver, await receiver.deliver(*signed_request(second, secret)), second["id"]
        )
        gate.start()
        assert await receiver.deliver(*signed_request(second, secret)) == (200, {"received": True})
        body, headers = signed_request(first, secret)
        assert (await receiver.deliver(body, headers))[1]["duplicate"] is True
        assert receiver.runs == [first["id"], second["id"]]
        assert receiver.errors == []
    finally:
        await store.aclose()


async def test_sqlite_locked_past_the_busy_timeout(
    make_spec: Callable[[str], StoreSpec],
    build: Callable[..., IdempotencyStore],
    entry: str,
    secret: str,
) -> None:
    spec = make_spec("sqlite")
    store = build(spec, busy_timeout=0.3)
    receiver = Receiver(secret, store, entry)
    warm_up = sample_event("invoice.created")
    event = sample_event("subscription.created")
    body, headers = signed_request(event, secret)
    assert (await receiver.deliver(*signed_request(warm_up, secret)))[0] == 200
    locker = sqlite3.connect(spec.target, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        receiver.runs.clear()
        assert_unavailable(receiver, await receiver.deliver(body, headers), event["id"])
        locker.execute("COMMIT")
        assert await receiver.deliver(body, headers) == (200, {"received": True})
        assert receiver.runs == [event["id"]]
    finally:
        locker.close()
        await store.aclose()


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    from commet_webhooks.stores.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "missing-dir" / "keys.db")
    with pytest.raises(StoreUnavailableError, match="unable to open"):
        store.claim("evt", "owner")


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_passwords_never_shown(kind: str, make_spec: Callable[[str], StoreSpec]) -> None:
    port = free_port()
    if kind == "redis":
        targets = [
            f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
            f"redis://user:{PASSWORD}@127.0.0.1:{port}/0",
            f"redis://127.0.0.1:{port}/0?password={PASSWORD}",
        ]
    else:
        targets = [
            f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/test",
            f"host=127.0.0.1 port={port} user=postgres password={PASSWORD} dbname=test",
        ]
    for target in targets:
        store = make_spec(kind).at(target).build(timeout=2)
        try:
            assert PASSWORD not in repr(store)
            with pytest.raises(StoreUnavailableError) as caught:
                store.claim("evt", "owner")
            assert PASSWORD not in str(caught.value)
            assert "unavailable" in str(caught.value)
        finally:
            store.close()
