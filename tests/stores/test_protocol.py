"""The claim / complete / release / renew protocol, identical for every store, sync and async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from store_helpers import StoreSpec

from commet_webhooks.stores import Claim, IdempotencyStore

pytestmark = pytest.mark.anyio


class Api:
    """One store called through its sync methods or through its async methods."""

    def __init__(self, store: IdempotencyStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    async def claim(self, key: str, owner: str) -> Claim:
        if self.mode == "sync":
            return self.store.claim(key, owner)
        return await self.store.aclaim(key, owner)

    async def complete(self, key: str, owner: str) -> bool:
        if self.mode == "sync":
            return self.store.complete(key, owner)
        return await self.store.acomplete(key, owner)

    async def release(self, key: str, owner: str) -> bool:
        if self.mode == "sync":
            return self.store.release(key, owner)
        return await self.store.arelease(key, owner)

    async def renew(self, key: str, owner: str) -> bool:
        if self.mode == "sync":
            return self.store.renew(key, owner)
        return await self.store.arenew(key, owner)

    async def claim_until(self, key: str, owner: str, timeout: float = 15.0) -> Claim:
        """Claim repeatedly until it stops answering BUSY/DONE (a lease or retention ran out)."""
        deadline = time.monotonic() + timeout
        while (result := await self.claim(key, owner)) is not Claim.CLAIMED:
            assert time.monotonic() < deadline, f"{key} still {result} after {timeout}s"
            await asyncio.sleep(0.05)
        return result


@pytest.fixture(params=["sync", "async"])
def api_mode(request: Any) -> str:
    return str(request.param)


async def test_claim_complete_then_done(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec)
    api = Api(store, api_mode)
    try:
        assert await api.claim("evt_1", "alice") is Claim.CLAIMED
        assert await api.claim("evt_1", "bob") is Claim.BUSY
        assert await api.claim("evt_1", "alice") is Claim.BUSY  # no re-entry, even for the owner
        assert await api.complete("evt_1", "bob") is False
        assert await api.release("evt_1", "bob") is False
        assert await api.claim("evt_1", "carol") is Claim.BUSY  # bob's attempts changed nothing
        assert await api.complete("evt_1", "alice") is True
        assert await api.claim("evt_1", "bob") is Claim.DONE
        assert await api.complete("evt_1", "alice") is False  # done keys have no owner
        assert await api.release("evt_1", "alice") is False
        assert await api.claim("evt_1", "bob") is Claim.DONE
        assert await api.claim("evt_2", "bob") is Claim.CLAIMED  # keys are independent
    finally:
        await store.aclose()


async def test_release_lets_the_next_claim_in(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec)
    api = Api(store, api_mode)
    try:
        assert await api.claim("evt_r", "alice") is Claim.CLAIMED
        assert await api.release("evt_r", "alice") is True
        assert await api.release("evt_r", "alice") is False
        assert await api.claim("evt_r", "bob") is Claim.CLAIMED
        assert await api.complete("evt_r", "alice") is False
        assert await api.complete("evt_r", "bob") is True
        assert await api.claim("evt_r", "alice") is Claim.DONE
    finally:
        await store.aclose()


async def test_expired_lease_is_taken_over(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec, lease_seconds=0.4)
    api = Api(store, api_mode)
    try:
        assert await api.claim("evt_l", "crashed") is Claim.CLAIMED
        assert await api.claim_until("evt_l", "retry") is Claim.CLAIMED
        # The first owner lost its claim: it can neither finish nor free it.
        assert await api.complete("evt_l", "crashed") is False
        assert await api.release("evt_l", "crashed") is False
        assert await api.claim("evt_l", "third") is Claim.BUSY
        assert await api.complete("evt_l", "retry") is True
        assert await api.claim("evt_l", "third") is Claim.DONE
    finally:
        await store.aclose()


async def test_done_keys_expire_after_retention(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec, retention_seconds=0.4)
    api = Api(store, api_mode)
    try:
        assert await api.claim("evt_d", "alice") is Claim.CLAIMED
        assert await api.complete("evt_d", "alice") is True
        assert await api.claim("evt_d", "bob") is Claim.DONE
        assert await api.claim_until("evt_d", "bob") is Claim.CLAIMED
    finally:
        await store.aclose()


async def test_two_instances_share_state(
    shared_spec: StoreSpec, build: Callable[..., IdempotencyStore]
) -> None:
    first, second = build(shared_spec), build(shared_spec)
    try:
        assert first.claim("evt_s", "alice") is Claim.CLAIMED
        assert await second.aclaim("evt_s", "bob") is Claim.BUSY
        assert await second.acomplete("evt_s", "bob") is False
        assert first.complete("evt_s", "alice") is True
        assert await second.aclaim("evt_s", "bob") is Claim.DONE
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_purge_deletes_expired_rows_only(
    kind: str, make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec(kind)
    store: Any = build(spec, lease_seconds=0.3, retention_seconds=0.3)
    other = build(spec, lease_seconds=30)
    assert other.claim("live", "b") is Claim.CLAIMED
    assert store.claim("old_lease", "a") is Claim.CLAIMED
    assert store.claim("old_done", "a") is Claim.CLAIMED
    assert store.complete("old_done", "a") is True
    time.sleep(0.4)
    assert store.purge() == 2
    assert store.purge() == 0
    assert other.claim("live", "c") is Claim.BUSY
    assert other.claim("old_done", "c") is Claim.CLAIMED


def test_threads_of_one_process_race_for_keys(
    spec: StoreSpec, build: Callable[..., IdempotencyStore]
) -> None:
    store = build(spec)
    keys = [f"evt_{i}" for i in range(20)]
    results: list[tuple[str, Claim]] = []

    def worker(n: int) -> None:
        for key in keys:
            results.append((key, store.claim(key, f"thread-{n}")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = Counter(key for key, result in results if result is Claim.CLAIMED)
    assert claimed == Counter(keys)
    assert len(results) == 8 * len(keys)


async def test_tasks_of_one_loop_race_for_keys(
    spec: StoreSpec, build: Callable[..., IdempotencyStore]
) -> None:
    store = build(spec)
    keys = [f"evt_{i}" for i in range(20)]
    try:
        results = await asyncio.gather(
            *(store.aclaim(key, f"task-{n}") for n in range(8) for key in keys)
        )
        claimed = Counter(
            key
            for key, result in zip([k for _ in range(8) for k in keys], results, strict=True)
            if result is Claim.CLAIMED
        )
        assert claimed == Counter(keys)
    finally:
        await store.aclose()


async def test_renew_keeps_a_lease_alive_past_its_length(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec, lease_seconds=1.0)
    api = Api(store, api_mode)
    try:
        assert await api.claim("evt_n", "alice") is Claim.CLAIMED
        began = time.monotonic()
        # Renewed every 0.3 s for 2.4 s: the 1 s lease never runs out.
        while time.monotonic() - began < 2.4:
            await asyncio.sleep(0.3)
            assert await api.renew("evt_n", "alice") is True
            assert await api.claim("evt_n", "bob") is Claim.BUSY
        assert await api.renew("evt_n", "bob") is False  # only the owner renews
        assert await api.claim("evt_n", "bob") is Claim.BUSY  # bob's attempt changed nothing
        assert await api.complete("evt_n", "alice") is True
        assert await api.renew("evt_n", "alice") is False  # done: nothing left to renew
        assert await api.claim("evt_n", "bob") is Claim.DONE
        assert await api.renew("evt_unknown", "alice") is False
    finally:
        await store.aclose()


async def test_renew_fails_once_the_lease_is_lost(
    spec: StoreSpec, build: Callable[..., IdempotencyStore], api_mode: str
) -> None:
    store = build(spec, lease_seconds=0.4)
    api = Api(store, api_mode)
    try:
        # Expired and taken over: the old owner cannot get it back.
        assert await api.claim("evt_t", "slow") is Claim.CLAIMED
        assert await api.claim_until("evt_t", "retry") is Claim.CLAIMED
        assert await api.renew("evt_t", "slow") is False
        assert await api.renew("evt_t", "retry") is True
        # Expired and not taken: lost all the same (another claim may come any moment).
        assert await api.claim("evt_e", "slow") is Claim.CLAIMED
        await asyncio.sleep(0.6)
        assert await api.renew("evt_e", "slow") is False
        assert await api.claim("evt_e", "next") is Claim.CLAIMED
        # Released: gone.
        assert await api.release("evt_e", "next") is True
        assert await api.renew("evt_e", "next") is False
    finally:
        await store.aclose()


async def test_release_quietly_frees_only_the_owners_claim(
    spec: StoreSpec, build: Callable[..., IdempotencyStore]
) -> None:
    store = build(spec)
    try:
        assert store.claim("evt_q", "alice") is Claim.CLAIMED
        assert store.release_quietly("evt_q", "bob") is False
        assert await store.arelease_quietly("evt_q", "bob") is False
        assert store.claim("evt_q", "bob") is Claim.BUSY
        assert await store.arelease_quietly("evt_q", "alice") is True
        assert store.claim("evt_q", "bob") is Claim.CLAIMED
        assert store.release_quietly("evt_q", "bob") is True
        assert store.release_quietly("evt_q", "bob") is False
    finally:
        await store.aclose()


def test_renewals_race_with_a_takeover(
    spec: StoreSpec, build: Callable[..., IdempotencyStore]
) -> None:
    """Renewals and claims racing on an expiring lease: never two owners at once."""
    store = build(spec, lease_seconds=0.2)
    owners_seen: list[str] = []
    stop = time.monotonic() + 1.5

    def renewer() -> None:
        while time.monotonic() < stop:
            if store.claim("evt_x", "renewer") is Claim.CLAIMED:
                owners_seen.append("renewer")
                while time.monotonic() < stop and store.renew("evt_x", "renewer"):
                    time.sleep(0.25)  # sometimes too late: the lease is lost

    def taker() -> None:
        while time.monotonic() < stop:
            if store.claim("evt_x", "taker") is Claim.CLAIMED:
                owners_seen.append("taker")
                # Whoever held it before can no longer renew it.
                assert store.renew("evt_x", "renewer") is False
                assert store.release("evt_x", "taker") is True
            time.sleep(0.01)

    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in (renewer, taker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert "taker" in owners_seen and "renewer" in owners_seen


def test_a_store_written_before_renewal_still_works() -> None:
    """Stores implementing only claim / complete / release stay valid; renew says so."""

    class Legacy(IdempotencyStore):
        def __init__(self) -> None:
            super().__init__()
            self.keys: dict[str, str] = {}

        def claim(self, key: str, owner: str) -> Claim:
            return Claim.CLAIMED if self.keys.setdefault(key, owner) == owner else Claim.BUSY

        def complete(self, key: str, owner: str) -> bool:
            return self.keys.get(key) == owner

        def release(self, key: str, owner: str) -> bool:
            return self.keys.pop(key, None) == owner

    store = Legacy()
    assert store.claim("evt", "alice") is Claim.CLAIMED
    assert store.release_quietly("evt", "alice") is True
    with pytest.raises(NotImplementedError, match="Legacy does not renew"):
        store.renew("evt", "alice")


async def test_thread_backed_calls_never_queue_behind_the_default_executor(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    """Sync handlers fill asyncio's default executor; SQLite calls still go through."""
    from concurrent.futures import ThreadPoolExecutor

    store = build(make_spec("sqlite"))
    loop = asyncio.get_running_loop()
    handlers = ThreadPoolExecutor(1)
    loop.set_default_executor(handlers)
    busy = threading.Event()
    try:
        blocked = loop.run_in_executor(None, busy.wait, 30)  # a handler that will not end
        assert await asyncio.wait_for(store.aclaim("evt_p", "a"), 10) is Claim.CLAIMED
        assert await asyncio.wait_for(store.arenew("evt_p", "a"), 10) is True
        assert await asyncio.wait_for(store.acomplete("evt_p", "a"), 10) is True
        assert not blocked.done()
    finally:
        busy.set()
        await store.aclose()
