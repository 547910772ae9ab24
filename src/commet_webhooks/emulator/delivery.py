"""The delivery engine: drains the durable outbox into signed HTTP POSTs, with retries.

Pending attempts are outbox rows with a due time. The engine claims due rows,
POSTs them concurrently over a small pool of ``httpx.AsyncClient``s (each with a
few connections; an attempt goes to the least busy client), logs every attempt
and, on failure, writes the next row ``delay / time_scale`` seconds after the
attempt finished. Claims are released at start-up, so whatever was pending when
the emulator died (even by SIGKILL) is delivered after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence

import httpx

from .._signing import sign
from ..dispatch import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from .state import RESPONSE_EXCERPT_BYTES, AttemptOutcome, Database, Job, now_iso

__all__ = ["DEFAULT_RETRY_SCHEDULE", "DELIVERY_TIMEOUT", "DeliveryEngine"]

logger = logging.getLogger("commet_webhooks.emulator.delivery")

#: Seconds to wait after each failed attempt: 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 6 h.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 21600)
#: A receiver that has not answered within this many seconds has failed the attempt.
DELIVERY_TIMEOUT = 10.0
_USER_AGENT = "Commet-Emulator/1.0 (commet-webhooks)"
_IDLE_POLL = 1.0
# httpx's pool does work proportional to its size on every request: many small pools
# (each attempt on the least busy one) deliver several times faster than one big pool.
_CONNECTIONS_PER_CLIENT = 4


class DeliveryEngine:
    """Concurrent, durable webhook delivery over the emulator's outbox."""

    def __init__(
        self,
        db: Database,
        *,
        time_scale: float = 1.0,
        retry_schedule: Sequence[float] | None = None,
        auto_disable_after: int | None = None,
        concurrency: int = 64,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        if (
            not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale))
            or time_scale <= 0
        ):
            raise ValueError("time_scale must be a positive number")
        schedule = DEFAULT_RETRY_SCHEDULE if retry_schedule is None else tuple(retry_schedule)
        if any(not math.isfinite(d) or d < 0 for d in schedule):
            raise ValueError("retry_schedule delays must be non-negative numbers of seconds")
        if auto_disable_after is not None and auto_disable_after < 1:
            raise ValueError("auto_disable_after must be at least 1")
        self.db = db
        self.time_scale = float(time_scale)
        self.retry_delays = tuple(delay / self.time_scale for delay in schedule)
        self.auto_disable_after = auto_disable_after
        self.concurrency = concurrency
        self.timeout = timeout
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._wakeup: asyncio.Event | None = None

    async def start(self) -> None:
        """Resume everything pending in the outbox and start delivering."""
        count = max(1, math.ceil(self.concurrency / _CONNECTIONS_PER_CLIENT))
        self._clients = [
            httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=_CONNECTIONS_PER_CLIENT),
                follow_redirects=False,
                headers={"User-Agent": _USER_AGENT},
            )
            for _ in range(count)
        ]
        self._busy = [0] * count
        self._wakeup = asyncio.Event()
        resumed = self.db.release_claims()
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
            jobs = self.db.claim_due(time.time(), free) if free > 0 else []
            for job in jobs:
                task = asyncio.create_task(self._deliver(job))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            next_due = self.db.next_due_at()
            if len(self._inflight) >= self.concurrency or next_due is None:
                wait = _IDLE_POLL
            else:
                wait = min(max(next_due - time.time(), 0.0), _IDLE_POLL)
            if wait > 0:  # until due, or woken by new work or a finished attempt
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)
            else:
                await asyncio.sleep(0)  # more is due: let the started attempts run first

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("delivery task crashed", exc_info=task.exception())
        self.wake()

    async def _deliver(self, job: Job) -> None:
        outcome = await self.attempt(job)
        disabled = self.db.record_attempt(
            job,
            outcome,
            retry_delays=self.retry_delays,
            auto_disable_after=self.auto_disable_after,
        )
        if outcome.ok:
            logger.debug("delivered %s to %s (%s)", job.event_id, job.url, outcome.status_code)
        else:
            logger.info(
                "delivery of %s to %s failed: %s",
                job.event_id,
                job.url,
                outcome.error or f"HTTP {outcome.status_code}",
            )
        if disabled is not None:
            logger.warning(
                "endpoint %s disabled after %d consecutive failed events",
                disabled,
                self.auto_disable_after,
            )

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
        try:
            status_code, excerpt = await asyncio.wait_for(
                self._post(job.url, job.body, headers), self.timeout
            )
        except asyncio.TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
        except Exception as exc:  # any failure of one attempt is logged, never fatal
            error = _describe(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        return AttemptOutcome(
            attempted_at=attempted_at,
            finished_at=time.time(),
            status_code=status_code,
            latency_ms=round(latency_ms, 3),
            error=error,
            response=excerpt,
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        # In-flight attempts never exceed the total connections, so this one has room.
        shard = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[shard] += 1
        try:
            client = self._clients[shard]
            async with client.stream("POST", url, content=body, headers=headers) as response:
                head = bytearray()
                async for chunk in response.aiter_bytes():
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
