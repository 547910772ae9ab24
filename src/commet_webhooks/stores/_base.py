"""The claim / complete / release / renew protocol every idempotency store implements.

A key (the event id, else the SHA-256 of the body) is *claimed* with an owner token
and a lease before handlers run, *renewed* by its owner while they run, *completed*
after they succeed (kept as done for ``retention_seconds``) and *released* when they
fail so Commet's retry runs them again. A lease that expires (a crashed worker) can be
claimed by the next delivery. Only the owner of a live claim can renew, complete or
release it.

The operations are written once here, as *steps*: a generator yields the primitive
operations it needs (:class:`Op`: take a key, look at it, finish it, ...) and receives
their results. Each backend only says how to run one primitive, in
:meth:`SteppedStore._run` (synchronous) and :meth:`SteppedStore._arun` (async); the
claim-and-retry loop, the owner checks and the result meanings are the same for all.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import StoreUnavailableError

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_RETENTION_SECONDS",
    "Claim",
    "ForkGuard",
    "IdempotencyStore",
    "Op",
    "PerLoop",
    "SteppedStore",
    "Steps",
    "Watchdog",
    "adrive",
    "drive",
    "in_store_thread",
    "store_executor",
    "unavailable",
]

T = TypeVar("T")
C = TypeVar("C")

logger = logging.getLogger("commet_webhooks.stores")

#: A claim outlives any sane handler run; a crashed worker's claim frees itself after it.
DEFAULT_LEASE_SECONDS = 60.0
#: Commet retries for about 13 hours; keep done keys for a week.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0
# A key that vanishes between "take" and "look" (released, expired) is retried this often.
_ATTEMPTS = 3


class Claim(str, enum.Enum):
    """What :meth:`IdempotencyStore.claim` found."""

    CLAIMED = "claimed"  # the caller now owns the key and must complete or release it
    DONE = "done"  # handled before: answer 200 duplicate
    BUSY = "busy"  # a live lease is held elsewhere: answer 409 so Commet retries


class IdempotencyStore(ABC):
    """Base class of the stores accepted by ``Webhooks(idempotency_store=...)``."""

    def __init__(
        self,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if not lease_seconds > 0:
            raise ValueError("lease_seconds must be positive")
        if not retention_seconds > 0:
            raise ValueError("retention_seconds must be positive")
        self.lease_seconds = float(lease_seconds)
        self.retention_seconds = float(retention_seconds)

    @abstractmethod
    def claim(self, key: str, owner: str) -> Claim:
        """Take ``key`` for ``owner`` with a lease, unless done or leased elsewhere."""

    @abstractmethod
    def complete(self, key: str, owner: str) -> bool:
        """Mark ``key`` done; False when ``owner`` no longer holds the claim."""

    @abstractmethod
    def release(self, key: str, owner: str) -> bool:
        """Drop ``owner``'s claim so a retry can take it; False when not the owner."""

    def renew(self, key: str, owner: str) -> bool:
        """Extend ``owner``'s live lease on ``key`` to now + ``lease_seconds``.

        False when the lease was lost: it expired (and may have been taken over), the
        key was completed or released, or another owner holds it. Atomic: a lease is
        never extended for anyone but its holder.

        Every bundled store implements it. A store written against the earlier
        protocol (claim / complete / release only) raises ``NotImplementedError``
        here: its leases are simply not renewed.
        """
        raise NotImplementedError(f"{type(self).__name__} does not renew leases")

    def release_quietly(self, key: str, owner: str) -> bool:
        """Best-effort :meth:`release` after a claim whose answer never came back.

        A claim that timed out may still have landed on the server; this frees it if
        ``owner`` holds it, so retries are not answered 409 for a whole lease. Never
        raises for an unreachable store: returns False instead.
        """
        try:
            return self.release(key, owner)
        except StoreUnavailableError:
            return False

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections; the default has none."""

    async def aclaim(self, key: str, owner: str) -> Claim:
        return await in_store_thread(self.claim, key, owner)

    async def acomplete(self, key: str, owner: str) -> bool:
        return await in_store_thread(self.complete, key, owner)

    async def arelease(self, key: str, owner: str) -> bool:
        return await in_store_thread(self.release, key, owner)

    async def arenew(self, key: str, owner: str) -> bool:
        return await in_store_thread(self.renew, key, owner)

    async def arelease_quietly(self, key: str, owner: str) -> bool:
        """The async :meth:`release_quietly`."""
        try:
            return await self.arelease(key, owner)
        except StoreUnavailableError:
            return False

    async def aclose(self) -> None:
        await in_store_thread(self.close)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lease_seconds={self.lease_seconds:g})"


# ---------------------------------------------------------------- store threads

_STORE_THREADS = 8
_executors: dict[int, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def store_executor() -> ThreadPoolExecutor:
    """This process's threads for blocking store calls made from async code.

    Not asyncio's default executor: sync handlers run there, and a store call queued
    behind busy handlers would hold its delivery (and its lease) for nothing. One per
    process, since threads do not survive ``fork()``.
    """
    pid = os.getpid()
    executor = _executors.get(pid)
    if executor is None:
        with _executors_lock:
            executor = _executors.get(pid)
            if executor is None:
                executor = _executors[pid] = ThreadPoolExecutor(
                    _STORE_THREADS, thread_name_prefix="commet-store"
                )
    return executor


async def in_store_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` on a store thread (see :func:`store_executor`)."""
    return await asyncio.get_running_loop().run_in_executor(store_executor(), func, *args)


# ---------------------------------------------------------------- steps


class Op(enum.Enum):
    """The primitive operations a backend runs; the result each must give is noted."""

    TAKE = "claim"  # claim a free or expired key -> bool (taken)
    LOOK = "inspect"  # a live key's state -> Claim.DONE, Claim.BUSY, or None when absent
    FINISH = "complete"  # owner's claim -> done -> bool
    FREE = "release"  # delete owner's claim -> bool
    EXTEND = "renew"  # owner's live lease -> now + lease -> bool
    PURGE = "purge"  # delete expired keys -> int (how many)
    PREPARE = "prepare"  # create the table if missing -> ignored


#: One primitive for one key and owner (both empty for PURGE).
Step = tuple[Op, str, str]
#: A store operation as primitives: yields steps, receives their results, returns its own.
Steps = Generator[Step, Any, T]


def claim_steps(key: str, owner: str) -> Steps[Claim]:
    for _ in range(_ATTEMPTS):
        if (yield Op.TAKE, key, owner):
            return Claim.CLAIMED
        seen = yield Op.LOOK, key, owner
        if seen is not None:
            return Claim(seen)
        # Gone between "take" and "look" (released or expired meanwhile): take again.
    return Claim.BUSY


def single_step(op: Op, key: str = "", owner: str = "") -> Steps[Any]:
    return (yield op, key, owner)


def drive(steps: Steps[T], run: Callable[[Step], Any]) -> T:
    """Run ``steps`` with ``run`` executing each primitive; the steps' result."""
    try:
        step = next(steps)
        while True:
            step = steps.send(run(step))
    except StopIteration as stop:
        result: T = stop.value
        return result


async def adrive(steps: Steps[T], run: Callable[[Step], Awaitable[Any]]) -> T:
    """:func:`drive` with an async ``run``."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await run(step))
    except StopIteration as stop:
        result: T = stop.value
        return result


class SteppedStore(IdempotencyStore):
    """A store whose operations are the shared steps run by one backend driver.

    Subclasses implement :meth:`_run` (run the steps, synchronously, on one connection)
    and may override :meth:`_arun` (the default runs :meth:`_run` on a store thread),
    and decide in :meth:`_purge_due` whether a claim first deletes expired keys.
    """

    def claim(self, key: str, owner: str) -> Claim:
        return self._run(lambda: self._claim_steps(key, owner))

    def complete(self, key: str, owner: str) -> bool:
        return bool(self._run(lambda: single_step(Op.FINISH, key, owner)))

    def release(self, key: str, owner: str) -> bool:
        return bool(self._run(lambda: single_step(Op.FREE, key, owner)))

    def renew(self, key: str, owner: str) -> bool:
        return bool(self._run(lambda: single_step(Op.EXTEND, key, owner)))

    async def aclaim(self, key: str, owner: str) -> Claim:
        return await self._arun(lambda: self._claim_steps(key, owner))

    async def acomplete(self, key: str, owner: str) -> bool:
        return bool(await self._arun(lambda: single_step(Op.FINISH, key, owner)))

    async def arelease(self, key: str, owner: str) -> bool:
        return bool(await self._arun(lambda: single_step(Op.FREE, key, owner)))

    async def arenew(self, key: str, owner: str) -> bool:
        return bool(await self._arun(lambda: single_step(Op.EXTEND, key, owner)))

    def _claim_steps(self, key: str, owner: str) -> Steps[Claim]:
        if self._purge_due():
            yield Op.PURGE, "", ""
        return (yield from claim_steps(key, owner))

    def _purge_due(self) -> bool:
        return False

    @abstractmethod
    def _run(self, make_steps: Callable[[], Steps[T]]) -> T:
        """Run the steps ``make_steps()`` builds; may build them again to retry."""

    async def _arun(self, make_steps: Callable[[], Steps[T]]) -> T:
        return await in_store_thread(self._run, make_steps)


class PurgeClock:
    """When a process's next claim should first delete expired keys."""

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("purge_interval must be positive")
        self.interval = float(interval)
        self._next = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def reset(self) -> None:
        self._next = time.monotonic() + self.interval


# ---------------------------------------------------------------- fork, loops and deadlines


class PerLoop(dict[asyncio.AbstractEventLoop, C]):
    """Async clients by event loop: they belong to the loop that opened them."""

    def current(self, make: Callable[[], C]) -> tuple[C, bool]:
        """The running loop's client (made by ``make`` if new) and whether it is new.

        Clients of loops closed meanwhile are dropped (they cannot be closed any more).
        """
        loop = asyncio.get_running_loop()
        client = self.get(loop)
        if client is not None:
            return client, False
        for stale in [other for other in self if other.is_closed()]:
            del self[stale]
        client = self[loop] = make()
        return client, True

    def pop_current(self) -> C | None:
        return self.pop(asyncio.get_running_loop(), None)


class ForkGuard:
    """Tells a store when it runs in a process forked after it connected.

    Connections inherited through ``fork()`` are never used and never closed (closing
    could end the parent's sessions or disturb its locks): :meth:`forked` keeps them
    from being garbage collected and tells the caller to start afresh.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._inherited: list[object] = []

    def forked(self, *inherited: Callable[[], object]) -> bool:
        """True once in a new process; ``inherited`` give what to keep alive."""
        if self._pid == os.getpid():
            return False
        with self._lock:
            if self._pid == os.getpid():
                return False
            self._inherited += [get() for get in inherited]
            self._pid = os.getpid()
            return True


def cut(fileno: int) -> None:
    """Shut a socket down in both directions, so a call blocked on it fails at once.

    Works on a socket that a client library owns: its own file descriptor stays open
    (the library closes it), only the connection ends.
    """
    try:
        sock = socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class Watchdog:
    """One thread that runs callbacks whose deadline passed, unless disarmed first.

    Blocking client calls that have no deadline of their own (a query waiting for an
    answer that a dead network never delivers) are armed with a callback that cuts
    their socket. Arming and disarming are a dict operation under a lock; the thread
    sleeps until the earliest deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, deadline: float, callback: Callable[[], None]) -> int:
        with self._lock:
            token = next(self._ids)
            self._armed[token] = callback
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._watch, name="commet-store-deadlines", daemon=True
                )
                self._thread.start()
            elif earliest:
                self._lock.notify()
            return token

    def disarm(self, token: int) -> bool:
        """False when the callback already ran (or is running)."""
        with self._lock:
            return self._armed.pop(token, None) is not None

    def _watch(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed meanwhile
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._heap)
                callback = self._armed.pop(token)
                try:
                    callback()
                except Exception:  # a callback must never stop the watch
                    logger.exception("a store deadline callback failed")


#: Shared by every store of the process.
WATCHDOG = Watchdog()


def unavailable(
    store: str, exc: BaseException, secrets: Iterable[str] = ()
) -> StoreUnavailableError:
    """The error for a store that failed with ``exc``; ``secrets`` never reach the message.

    Raise it ``from exc`` so the original stays available to debuggers.
    """
    message = " ".join(f"{type(exc).__name__}: {exc}".split()) or type(exc).__name__
    for secret in secrets:
        message = message.replace(secret, "***")
    return StoreUnavailableError(f"{store} unavailable: {message}")
