"""Keeping a claim alive while its handlers run: lease renewal, sync and async.

A claim lives ``lease_seconds`` unless completed. Handlers that outlive it would let a
retry take the key and run them twice, so while handlers run the claim is renewed
every third of the lease, by its owner token. A worker that dies stops renewing, so
its claim still expires after ``lease_seconds``. Handlers that finish within the first
third of the lease cost no store round-trip at all: renewal only starts once due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AsyncLeaseKeeper", "LeaseRenewer", "renewal_interval"]

logger = logging.getLogger("commet_webhooks")

LostCallback = Callable[[], None]


def renewal_interval(store: Any) -> float | None:
    """Seconds between renewals for ``store``, or None when it cannot renew."""
    lease = getattr(store, "lease_seconds", None)
    if not isinstance(lease, (int, float)) or lease <= 0 or not _can_renew(store):
        return None
    return float(lease) / 3.0


def _can_renew(store: Any) -> bool:
    """Whether ``store`` implements ``renew`` (a custom store may predate it)."""
    from .stores._base import IdempotencyStore

    renew = getattr(type(store), "renew", None)
    return renew is not None and renew is not getattr(IdempotencyStore, "renew", None)


class AsyncLeaseKeeper:
    """Renews one claim on the running loop until :meth:`stop`."""

    __slots__ = ("_interval", "_key", "_lost", "_owner", "_store", "_task", "_timer")

    def __init__(
        self, store: Any, key: str, owner: str, interval: float, on_lost: LostCallback
    ) -> None:
        self._store, self._key, self._owner = store, key, owner
        self._interval = interval
        self._lost = on_lost
        self._task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval, self._begin)

    def _begin(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._renew_until_stopped())

    async def _renew_until_stopped(self) -> None:
        while True:
            try:
                held = await self._store.arenew(self._key, self._owner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The store may be briefly unreachable while the lease still lives.
                logger.warning("could not renew the lease on %s: %s", self._key, exc)
            else:
                if not held:
                    self._lost()
                    return
            await asyncio.sleep(self._interval)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


@dataclass(order=True)
class _Watch:
    due: float
    order: int
    store: Any = field(compare=False)
    key: str = field(compare=False)
    owner: str = field(compare=False)
    interval: float = field(compare=False)
    on_lost: LostCallback = field(compare=False)
    stopped: bool = field(default=False, compare=False)


class LeaseRenewer:
    """One background thread renewing the claims of sync handlers that run long.

    :meth:`watch` costs a lock and a heap push; claims whose handlers finish before
    their first renewal is due never reach the store.
    """

    def __init__(self) -> None:
        self._heap: list[_Watch] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._counter = itertools.count()

    def watch(
        self, store: Any, key: str, owner: str, interval: float, on_lost: LostCallback
    ) -> _Watch:
        item = _Watch(
            time.monotonic() + interval, next(self._counter), store, key, owner, interval, on_lost
        )
        with self._cond:
            self._ensure_thread()
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._cond.notify()
        return item

    @staticmethod
    def unwatch(item: _Watch) -> None:
        item.stopped = True  # removed lazily by the thread

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._thread is None or self._pid != pid or not self._thread.is_alive():
            if self._pid != pid:
                self._heap = []  # a forked child does not renew its parent's claims
            self._pid = pid
            self._thread = threading.Thread(
                target=self._run, name="commet-webhooks-lease", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0].stopped:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0].due - time.monotonic()
                    if delay <= 0:
                        item = heapq.heappop(self._heap)
                        break
                    self._cond.wait(delay)
            self._renew(item)

    def _renew(self, item: _Watch) -> None:
        try:
            held = item.store.renew(item.key, item.owner)
        except Exception as exc:
            logger.warning("could not renew the lease on %s: %s", item.key, exc)
            held = True  # try again next interval: the lease may still be alive
        if item.stopped:
            return
        if not held:
            item.on_lost()
            return
        item.due = time.monotonic() + item.interval
        with self._cond:
            heapq.heappush(self._heap, item)
