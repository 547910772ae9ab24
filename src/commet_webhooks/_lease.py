"""Keeping a claim alive while its handlers run: lease renewal, sync and async.

A claim lives ``lease_seconds`` unless completed. Handlers that outlive it would let a
retry take the key and run them twice, so while handlers run the claim is renewed
every third of the lease, by its owner token. A worker that dies stops renewing, so
its claim still expires after ``lease_seconds``. Handlers that finish within the first
third of the lease cost no store round-trip at all: renewal only starts once due.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
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


class _Watch:
    """One claim being kept alive for a sync handler."""

    __slots__ = ("due", "interval", "key", "on_lost", "owner", "store")

    def __init__(
        self, store: Any, key: str, owner: str, interval: float, on_lost: LostCallback
    ) -> None:
        self.due = time.monotonic() + interval
        self.store, self.key, self.owner = store, key, owner
        self.interval = interval
        self.on_lost = on_lost


class LeaseRenewer:
    """One background thread renewing the claims of sync handlers that run long.

    :meth:`watch` and :meth:`unwatch` are one dict insertion and one removal (atomic
    in CPython, so no lock): the per-delivery cost stays negligible. The thread wakes
    every quarter of the shortest renewal interval it has seen and renews what is
    due; a claim is first due a whole interval after it was watched and its lease is
    three intervals long, so a renewal is never late enough to matter. Claims whose
    handlers finish before their first renewal is due never reach the store.
    """

    def __init__(self) -> None:
        self._active: dict[int, _Watch] = {}
        self._counter = itertools.count()
        self._lock = threading.Lock()  # only around starting the thread
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._tick = float("inf")

    def watch(
        self, store: Any, key: str, owner: str, interval: float, on_lost: LostCallback
    ) -> int:
        token = next(self._counter)
        self._active[token] = _Watch(store, key, owner, interval, on_lost)
        if self._thread is None or self._pid != os.getpid() or interval / 4 < self._tick:
            self._start(interval)
        return token

    def unwatch(self, token: int) -> None:
        self._active.pop(token, None)

    def _start(self, interval: float) -> None:
        with self._lock:
            if interval / 4 < self._tick:
                self._tick = interval / 4
                self._wake.set()  # a shorter lease than seen before: re-plan now
            pid = os.getpid()
            if self._thread is None or self._pid != pid or not self._thread.is_alive():
                self._pid = pid
                self._thread = threading.Thread(
                    target=self._run, name="commet-webhooks-lease", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._tick)
            self._wake.clear()
            now = time.monotonic()
            for token, item in self._active.copy().items():
                if item.due <= now:
                    self._renew(token, item)

    def _renew(self, token: int, item: _Watch) -> None:
        try:
            held = item.store.renew(item.key, item.owner)
        except Exception as exc:
            logger.warning("could not renew the lease on %s: %s", item.key, exc)
            held = True  # try again next interval: the lease may still be alive
        if token not in self._active:
            return  # the handlers finished meanwhile
        if not held:
            self._active.pop(token, None)
            item.on_lost()
            return
        item.due = time.monotonic() + item.interval
