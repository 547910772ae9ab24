"""The delivery engine: drains the durable outbox into signed HTTP POSTs, with retries.

Pending attempts are outbox rows with a due time. The engine claims due rows,
POSTs them concurrently over a small pool of ``httpx.AsyncClient``s (each with a
few connections; an attempt goes to the least busy client), and hands each result
to :func:`.policy.next_state`, whose answer the outbox writes: the next attempt, a
final status, and the endpoint's run of failed events (which may disable it).
Claims are released at start-up, so whatever was pending when the emulator died
(even by SIGKILL) is delivered after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import sqlite3
import time
from collections.abc import Coroutine
from typing import Any, Literal

import httpx
import msgspec

from .._signing import sign
from .._wire import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from .chaos import Chaos, ChaosRoll, roll
from .metrics import EmulatorMetrics
from .policy import DEFAULT_RETRY_SCHEDULE, DELIVERY_TIMEOUT, DeliveryPolicy, next_state
from .storage import Storage
from .storage.outbox import RESPONSE_EXCERPT_BYTES, AttemptOutcome, Job
from .storage.times import now_iso

__all__ = ["DEFAULT_RETRY_SCHEDULE", "DELIVERY_TIMEOUT", "DeliveryEngine"]

logger = logging.getLogger("commet_webhooks.emulator.delivery")

_USER_AGENT = "Commet-Emulator/1.0 (commet-webhooks)"
_IDLE_POLL = 1.0
# httpx's pool does work proportional to its size on every request: many small pools
# (each attempt on the least busy one) deliver several times faster than one big pool.
_CONNECTIONS_PER_CLIENT = 4


class DeliveryEngine:
    """Concurrent, durable webhook delivery over the emulator's outbox."""

    def __init__(
        self,
        store: Storage,
        policy: DeliveryPolicy | None = None,
        *,
        chaos: Chaos | None = None,
        concurrency: int = 64,
        metrics: EmulatorMetrics | None = None,
    ) -> None:
        self.store = store
        #: Attempts, failed events and auto-disables, counted as they are written.
        self.metrics = metrics or EmulatorMetrics()
        self.policy = policy or DeliveryPolicy()
        #: The chaos of endpoints that have none of their own (off by default).
        self.chaos = chaos or Chaos()
        self._rng = random.Random(self.chaos.seed)  # noqa: S311 - dice for simulated faults
        self._chaos_cache: dict[str, Chaos] = {}
        self.concurrency = concurrency
        self.timeout = self.policy.timeout
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._wakeup: asyncio.Event | None = None
        self._backoff = 0.0
        #: The last database error the loop met, until it works again (for the dashboard).
        self.last_error: str | None = None

    async def start(self) -> None:
        """Resume everything pending in the outbox and start delivering."""
        count = max(1, math.ceil(self.concurrency / _CONNECTIONS_PER_CLIENT))
        self._clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=_CONNECTIONS_PER_CLIENT),
                follow_redirects=False,
                headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
            )
            for _ in range(count)
        ]
        self._busy = [0] * count
        self._wakeup = asyncio.Event()
        resumed = self.store.outbox.release_claims()
        if resumed:
            logger.info("resuming %d interrupted delivery attempt(s)", resumed)
        self._runner = asyncio.create_task(self._run(), name="commet-emulator-delivery")

    async def stop(self, grace: float = 1.0) -> None:
        """Stop delivering; attempts still running after ``grace`` seconds stay in the outbox."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._inflight:
            _, still_running = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        for client in self._clients:
            await client.aclose()
        self._clients, self._busy = [], []

    def wake(self) -> None:
        """New outbox rows were written: look for due work now."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            self._wakeup.clear()
            free = self.concurrency - len(self._inflight)
            try:
                jobs = self.store.outbox.claim_due(time.time(), free) if free > 0 else []
                next_due = self.store.outbox.next_due_at()
            except sqlite3.Error as exc:  # e.g. another process holds a lock: wait, retry
                await self._database_trouble(exc)
                continue
            self._backoff = 0.0
            self.last_error = None
            for job in jobs:
                self._spawn(self._deliver(job))
            if len(self._inflight) >= self.concurrency or next_due is None:
                wait = _IDLE_POLL
            else:
                wait = min(max(next_due - time.time(), 0.0), _IDLE_POLL)
            if wait > 0:  # until due, or woken by new work or a finished attempt
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)
            else:
                await asyncio.sleep(0)  # more is due: let the started attempts run first

    async def _database_trouble(self, exc: sqlite3.Error) -> None:
        """Log a database error, remember it for the dashboard and back off (up to 5 s)."""
        self._backoff = min(max(self._backoff * 2, 0.1), 5.0)
        self.last_error = f"database error: {exc}"
        logger.error("delivery paused %.1f s by a %s", self._backoff, self.last_error)
        await asyncio.sleep(self._backoff)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, counted in flight until it ends."""
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("delivery task crashed", exc_info=task.exception())
        self.wake()

    def chaos_for_endpoint(self, settings: str | None) -> Chaos:
        """The chaos for an endpoint's stored settings (JSON): its own, else the default."""
        if settings is None:
            return self.chaos
        found = self._chaos_cache.get(settings)
        if found is None:
            try:
                found = Chaos(**msgspec.json.decode(settings))
            except (msgspec.DecodeError, TypeError, ValueError):
                found = self.chaos
            self._chaos_cache[settings] = found
        return found

    async def _deliver(self, job: Job) -> None:
        chaos = self.chaos_for_endpoint(job.chaos)
        dice = (
            ChaosRoll() if job.manual else roll(chaos, self._rng, already_postponed=job.postponed)
        )
        if dice.postpone:  # held back: the events behind it go first
            self.store.outbox.postpone(job, time.time() + dice.postpone)
            return
        if dice.delay:
            await asyncio.sleep(dice.delay)
        outcome = await self.attempt(job)
        if dice.duplicate and outcome.ok:
            # The same bytes again, as a sender that lost the answer: the attempt log
            # keeps one attempt, the metrics count both POSTs.
            self.metrics.attempt(job.event_type, await self.attempt(job))
        if dice.drop:
            outcome = dataclasses.replace(
                outcome,
                status_code=None,
                error="chaos: answer dropped (the receiver got the request)",
                failure="dropped",
            )
        if dice.note:
            outcome = dataclasses.replace(outcome, note=dice.note)
        disabled = await self._settle_patiently(job, outcome)
        if outcome.ok:
            logger.debug("delivered %s to %s (%s)", job.event_id, job.url, outcome.status_code)
        else:
            logger.info(
                "delivery of %s to %s failed: %s",
                job.event_id,
                job.url,
                outcome.error or f"HTTP {outcome.status_code}",
            )
        if disabled:
            logger.warning(
                "endpoint %s disabled after %d consecutive failed events",
                job.endpoint_id,
                self.policy.auto_disable_after,
            )

    async def deliver_now(self, delivery_id: str) -> AttemptOutcome | None:
        """Make the waiting attempt of one delivery now and return how it went
        (None when another worker took it first)."""
        job = self.store.outbox.claim_delivery(delivery_id)
        if job is None:
            return None
        if not self._clients:  # not started (no lifespan): a one-off client
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                self._clients, self._busy = [client], [0]
                try:
                    outcome = await self.attempt(job)
                finally:
                    self._clients, self._busy = [], []
        else:
            outcome = await self.attempt(job)
        try:
            self.settle(job, outcome)
        except sqlite3.Error:
            # The attempt was made: answer with how it went, and write its result once
            # the file is free, as the delivery loop does (else the claimed row would
            # wait for a restart).
            self._spawn(self._settle_patiently(job, outcome))
        return outcome

    async def _settle_patiently(self, job: Job, outcome: AttemptOutcome) -> bool:
        """:meth:`settle`, retried with back-off while the database refuses the write."""
        while True:
            try:
                return self.settle(job, outcome)
            except sqlite3.Error as exc:  # keep the result: write it once the file is free
                await self._database_trouble(exc)

    def settle(self, job: Job, outcome: AttemptOutcome) -> bool:
        """Write an attempt's result; True when it got the endpoint disabled.

        The metrics count it once the transaction is committed, so a write retried
        after a database error is counted once.
        """
        store = self.store
        failed = disabled = False
        with store.db.transaction():
            state = store.outbox.state_after(job)
            if state is not None:  # else the delivery vanished: nothing to write
                after = next_state(self.policy, state, ok=outcome.ok, manual=job.manual)
                store.outbox.record(job, outcome, after)
                if after.endpoint == "succeeded":
                    store.endpoints.count_success(job.endpoint_id)
                elif after.endpoint == "failed":
                    failed = True
                    disabled = store.endpoints.count_failure(
                        job.endpoint_id, disable_after=self.policy.auto_disable_after
                    )
        self.metrics.attempt(job.event_type, outcome)
        if failed:
            self.metrics.event_failed(job.event_type)
        if disabled:
            self.metrics.auto_disabled()
        return disabled

    async def attempt(self, job: Job) -> AttemptOutcome:
        """POST the stored body once; never raises for a receiver's failure."""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(job.body, job.secret),
            EVENT_TYPE_HEADER: job.event_type,
            TIMESTAMP_HEADER: job.timestamp,
            EVENT_ID_HEADER: job.event_id,
        }
        attempted_at = now_iso()
        started = time.perf_counter()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        failure: Literal["timeout", "connection_error"] | None = None
        try:
            status_code, excerpt = await asyncio.wait_for(
                self._post(job.url, job.body, headers), self.timeout
            )
        except (asyncio.TimeoutError, httpx.TimeoutException):
            error, failure = f"no answer within {self.timeout:g} s", "timeout"
        except Exception as exc:  # any failure of one attempt is logged, never fatal
            error, failure = _describe(exc), "connection_error"
        latency_ms = (time.perf_counter() - started) * 1000
        return AttemptOutcome(
            attempted_at=attempted_at,
            finished_at=time.time(),
            status_code=status_code,
            latency_ms=round(latency_ms, 3),
            error=error,
            response=excerpt,
            failure=failure,
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        # In-flight attempts never exceed the total connections, so this one has room.
        shard = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            client = self._clients[shard]
            async with client.stream("POST", url, content=body, headers=headers) as response:
                head = bytearray()
                # Raw bytes: a compressed answer is never inflated (a tiny gzip body can
                # expand a thousandfold); the log keeps at most an excerpt anyway.
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= RESPONSE_EXCERPT_BYTES:
                        break
                excerpt = bytes(head[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", "replace")
                return response.status_code, excerpt
        finally:
            self._busy[shard] -= 1


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:300]
