"""``Webhooks``: raw body + headers in, ``WebhookResponse`` out.

A delivery goes through three pieces, each readable on its own:

- :mod:`._admission` — pure checks: size, signature, decode, tolerance;
- :mod:`._pipeline` — claim -> run handlers -> complete/release, as a generator that
  yields the I/O it needs;
- the two drivers below — :meth:`Webhooks.handle` executes those operations with
  ``await``, :meth:`Webhooks.handle_sync` with plain calls.

Registration (which handlers run for which event type) is :class:`~._router.Router`,
which ``Webhooks`` extends. No socket, no framework object: adapters translate a
request into ``(body, headers)`` and the returned :class:`WebhookResponse` back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from time import perf_counter
from typing import TYPE_CHECKING, Any

from . import _responses as answers
from ._admission import Admitted, Rejected, admit
from ._concurrency import gather_settled, loop_running_here, run_blocking
from ._envelope import WebhookEvent
from ._lease import AsyncLeaseKeeper, LeaseRenewer, renewal_interval
from ._observe import COMMET_TIMEOUT_SECONDS, DeliveryRecord, Observer
from ._offload import Offload, OffloadedDelivery
from ._pipeline import (
    KEEP_CLAIM,
    ClaimOp,
    CompleteOp,
    EventRecorder,
    Flow,
    HandlerErrors,
    Op,
    PublishOp,
    ReleaseOp,
    ReportOp,
    RunOp,
)
from ._pipeline import handled as _handled
from ._pipeline import offloaded as _offloaded
from ._pipeline import process as _process
from ._pipeline import rejected as _rejected
from ._pipeline import settle as _settle
from ._responses import Outcome, WebhookResponse
from ._router import Handler, Registered, Router, check_keywords, registered
from ._signing import SecretKeys
from ._wire import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    get_header,
    iso_time,
)
from .errors import LeaseLostError, StoreUnavailableError
from .events import HandlerKeywords
from .stores._base import IdempotencyStore, unavailable

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ErrorHandler",
    "Handler",
    "HandlerKeywords",
    "Observer",
    "Offload",
    "OffloadedDelivery",
    "Outcome",
    "Router",
    "WebhookResponse",
    "Webhooks",
    "get_header",
    "run_blocking",
]

logger = logging.getLogger("commet_webhooks")

DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_HANDLER_THREADS = 32

ErrorHandler = Callable[[BaseException, WebhookEvent | bytes], Awaitable[None] | None]
"""``on_error(exc, event_or_raw_body)``: plain or ``async``."""


class Webhooks(Router):
    """Verify, parse, deduplicate and route Commet webhooks.

    >>> webhooks = Webhooks(webhook_secret="whsec_...", on_payment_failed=dunning)
    >>> response = await webhooks.handle(body, headers)

    ``on_payload`` sees every verified event, beside the specific handlers (with
    :meth:`handle` they run concurrently; :meth:`handle_sync` runs sync handlers one
    after another). ``on_error(exc, event_or_raw_body)`` sees handler errors, invalid
    payloads and events that did not fit their class. Handlers may also live on
    :class:`Router` objects in other modules, gathered with ``routers=[...]``.
    """

    def __init__(
        self,
        webhook_secret: str | Sequence[str],
        *,
        on_payload: Handler | None = None,
        on_error: ErrorHandler | None = None,
        idempotency_store: IdempotencyStore | None = None,
        retry_on_handler_error: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tolerance: float | None = None,
        routers: Sequence[Router] = (),
        handler_threads: int = DEFAULT_HANDLER_THREADS,
        offload: Offload | None = None,
        observer: Observer | None = None,
        **handlers: Unpack[HandlerKeywords],
    ) -> None:
        check_keywords(handlers, extra="on_payload, on_error, routers")
        if offload is not None and not isinstance(offload, Offload):
            raise TypeError("offload must have publish() and apublish() (commet_webhooks.Offload)")
        if not isinstance(max_body_bytes, int) or max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be a positive integer")
        if tolerance is not None and not tolerance > 0:
            raise ValueError("tolerance must be a positive number of seconds or None")
        if not isinstance(handler_threads, int) or handler_threads <= 0:
            raise ValueError("handler_threads must be a positive integer")
        self._keys = SecretKeys(webhook_secret)
        self._store = idempotency_store
        self.retry_on_handler_error = bool(retry_on_handler_error)
        self.max_body_bytes = max_body_bytes
        self.tolerance = tolerance
        self.handler_threads = handler_threads
        self._offload = offload
        self.observer: Observer | None = observer
        """Instrumentation hooks (see ``commet_webhooks.observability``); None costs nothing."""
        self._on_error: Registered | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._renew_every = renewal_interval(idempotency_store)
        self._recorder = (
            idempotency_store if isinstance(idempotency_store, EventRecorder) else None
        )
        self._renewer = LeaseRenewer()
        self._background: set[asyncio.Task[None]] = set()
        super().__init__(*routers, on_payload=on_payload, **handlers)
        if on_error is not None:
            self.on_error(on_error)

    def __repr__(self) -> str:
        return (
            f"Webhooks(secrets={len(self._keys)} redacted, handlers={self.event_types}, "
            f"catch_all={len(self.catch_all())}, store={self._store!r})"
        )

    def on_error(self, fn: ErrorHandler) -> ErrorHandler:
        """Decorator: set the error reporter, called as ``fn(exc, event_or_raw_body)``."""
        self._on_error = registered(fn)
        return fn

    def report_error(self, error: BaseException, subject: WebhookEvent | bytes) -> None:
        """Call ``on_error`` as the pipeline does (task-queue workers, inbox tools).

        Never raises: a reporter that fails is logged. Safe from sync code only; from
        async code use :meth:`areport_error`.
        """
        self._report_sync(ReportOp(error, subject))

    async def areport_error(self, error: BaseException, subject: WebhookEvent | bytes) -> None:
        """:meth:`report_error` for async code."""
        await self._report_async(ReportOp(error, subject))

    @property
    def idempotency_store(self) -> IdempotencyStore | None:
        return self._store

    # ------------------------------------------------------------ entry points

    async def handle(
        self, body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Process one delivery and return the answer for Commet (never raises for bad input)."""
        return await self._handle_async(body, headers, offload=self._offload is not None)

    def handle_sync(
        self, body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookResponse:
        """:meth:`handle` for synchronous code (Flask, Django WSGI, worker threads).

        Sync handlers run in the calling thread; async handlers run on a private
        event loop, so this also works from a worker thread of a server whose loop
        runs elsewhere. Calling it from a thread that is running an event loop (an
        ``async def`` endpoint) raises ``RuntimeError``: there, ``await handle()``.
        """
        if loop_running_here():
            raise RuntimeError(
                "Webhooks.handle_sync() was called from a running event loop, where it "
                "would block every other request; use 'await webhooks.handle(...)'"
            )
        return self._handle_sync(body, headers, offload=self._offload is not None)

    async def ahandle_offloaded(
        self, delivery: OffloadedDelivery, *, check_tolerance: bool = True
    ) -> WebhookResponse:
        """Run a delivery a task queue carried (see ``offload=``): verify again, then handle.

        The answer's ``outcome`` tells the worker what to do: ``handler_error``,
        ``busy`` and ``store_unavailable`` are worth a retry; the rest are final.
        ``check_tolerance=False`` skips the timestamp-age check (replays of stored
        events are old by design); the signature is always checked.
        """
        return await self._handle_async(
            delivery.body, delivery.headers(), offload=False, fresh=check_tolerance
        )

    def handle_offloaded(
        self, delivery: OffloadedDelivery, *, check_tolerance: bool = True
    ) -> WebhookResponse:
        """:meth:`ahandle_offloaded` for synchronous workers."""
        return self._handle_sync(
            delivery.body, delivery.headers(), offload=False, fresh=check_tolerance
        )

    def replay(self, target: Any, *, force: bool = False, dry_run: bool = False) -> Any:
        """Run events kept by an inbox store again (see ``commet_webhooks.inbox.replay``)."""
        from .inbox import replay

        return replay(self, target, force=force, dry_run=dry_run)

    async def areplay(self, target: Any, *, force: bool = False, dry_run: bool = False) -> Any:
        """:meth:`replay` for async code."""
        from .inbox import areplay

        return await areplay(self, target, force=force, dry_run=dry_run)

    def preflight(
        self, method: str, content_length: str | int | None = None
    ) -> WebhookResponse | None:
        """Checks an adapter makes before reading the body: 405 and a declared 413.

        Returns the answer to send at once, or None to go on and read the body.
        """
        if method.upper() != "POST":
            return self.early(answers.NOT_ALLOWED)
        if content_length is not None:
            try:
                declared = int(content_length)
            except (TypeError, ValueError):
                return None  # the body read will enforce the limit
            if declared > self.max_body_bytes:
                return self.early(answers.TOO_LARGE)
        return None

    def too_large(self) -> WebhookResponse:
        """The 413 answer, for adapters that stop reading a body past the limit."""
        return self.early(answers.TOO_LARGE)

    def early(self, response: WebhookResponse) -> WebhookResponse:
        """Return ``response``, an answer an adapter gives without calling :meth:`handle`.

        405, 413, an unreadable body, repeated signature headers: the observer (metrics,
        logs) sees these like any other delivery, with no event and no time spent.
        """
        observer = self.observer
        if observer is not None:
            token = _quietly(observer.delivery_started, _NO_HEADERS)
            _quietly(observer.delivery_finished, token, response, 0.0)
        return response

    # ------------------------------------------------------------ shared by both drivers

    def _flow(self, admission: Admitted | Rejected, offload: bool) -> Flow | WebhookResponse:
        """The pipeline for this delivery, or the answer itself when there is nothing to do."""
        if not isinstance(admission, Admitted):
            return admission.response if admission.error is None else _rejected(admission)
        if offload:
            return _offloaded(admission)
        admitted = admission
        if admitted.schema_error is not None:
            handlers = self.catch_all()  # never a typed handler with half an object
        else:
            handlers = self.plan_for(admitted.event.event)
        return _process(
            admitted,
            handlers,
            use_store=self._store is not None,
            retry_on_handler_error=self.retry_on_handler_error,
        )

    def _offloaded(self, admitted: Admitted, token: Any) -> OffloadedDelivery:
        return OffloadedDelivery(
            body=admitted.body,
            signature=admitted.signature,
            event_id=admitted.event.id,
            event_type=admitted.event.event,
            received_at=iso_time(datetime.now(timezone.utc)),
            context=self._context(token),
        )

    def _finished(
        self, response: WebhookResponse, started: float, token: Any
    ) -> WebhookResponse:
        """Budget warning and observer call, once the answer is decided."""
        elapsed = time.monotonic() - started
        if elapsed > COMMET_TIMEOUT_SECONDS:
            event = response.event
            logger.warning(
                "handling %s %s took %.1f s, past Commet's %.0f s timeout: Commet counts "
                "this attempt as failed and retries; move slow work off the request "
                "(Webhooks(offload=...)) or into a background job",
                event.event if event is not None else "a delivery",
                (event.id or "") if event is not None else "",
                elapsed,
                COMMET_TIMEOUT_SECONDS,
            )
        observer = self.observer
        if observer is not None:
            try:
                observer.delivery_finished(token, response, elapsed)
            except Exception:
                _hook_failed(observer.delivery_finished)
        return response

    def _start(
        self, body: Any, headers: Mapping[str, str], fresh: bool
    ) -> tuple[float, Any, Admitted | Rejected]:
        """The start time, the observer's token and the admission of one delivery."""
        started = time.monotonic()
        tolerance = self.tolerance if fresh else None
        observer = self.observer
        if observer is None:
            return started, None, admit(body, headers, self._keys, self.max_body_bytes, tolerance)
        # Hooks are called inline (not through _quietly): this is every delivery's path.
        try:
            token = observer.delivery_started(headers)
        except Exception:
            _hook_failed(observer.delivery_started)
            token = None
        admission = admit(body, headers, self._keys, self.max_body_bytes, tolerance)
        if _records(token):
            token.admission = admission
            token.admission_seconds = time.monotonic() - started
            return started, token, admission
        try:
            observer.admitted(token, admission, time.monotonic() - started)
        except Exception:
            _hook_failed(observer.admitted)
        return started, token, admission

    def _direct(self, admission: Admitted | Rejected, offload: bool) -> RunOp | None:
        """The handlers to run at once, when the delivery needs none of the pipeline's I/O.

        Without a store there is no claim to take, complete or release, so the drivers
        call the handlers themselves and enter the pipeline (:meth:`_settle`) only when
        one failed: the common receiver skips the generator altogether.
        """
        if (
            self._store is None
            and not offload
            and type(admission) is Admitted
            and admission.schema_error is None
        ):
            event = admission.event
            return RunOp(event, self.plan_for(event.event))
        return None

    def _settle(self, admission: Admitted | Rejected, errors: HandlerErrors) -> Flow:
        """The pipeline's last step for a direct delivery whose handlers failed."""
        assert type(admission) is Admitted
        return _settle(admission, errors, retry_on_handler_error=self.retry_on_handler_error)

    def _store_call(self, op: Op) -> tuple[str, tuple[Any, ...]] | None:
        """The store method (sync name; ``a`` + name is the async one) and its arguments.

        None for a best-effort release, which runs in the background instead.
        """
        if isinstance(op, ClaimOp):
            if self._recorder is not None and op.admitted is not None:
                return "claim_event", (op.key, op.owner, op.admitted)
            return "claim", (op.key, op.owner)
        if isinstance(op, CompleteOp):
            return "complete", (op.key, op.owner)
        assert isinstance(op, ReleaseOp)
        if op.quiet:
            self._release_in_background(op)
            return None
        if self._recorder is not None and op.error:
            return "release_failed", (op.key, op.owner, op.error)
        return "release", (op.key, op.owner)

    def _store_scope(self, token: Any, op: Op) -> contextlib.AbstractContextManager[None]:
        if self.observer is None:
            return _NO_SCOPE
        if _records(token):
            return _Timed(token, "store", _OPERATION_NAMES[type(op)])
        return self.observer.store_call(token, _OPERATION_NAMES[type(op)])

    def _context(self, token: Any) -> dict[str, str]:
        """Metadata that travels with an offloaded delivery (tracing context, if any)."""
        inject = getattr(self.observer, "inject_context", None)
        return dict(_quietly(inject, token) or {}) if inject is not None else {}

    def _lease_lost(self, op: RunOp) -> Callable[[], None]:
        """What to do when a renewal finds the claim gone: log and tell ``on_error``."""

        def lost() -> None:
            logger.warning(
                "lease on %s expired while its handlers ran; another delivery may run them "
                "again (raise lease_seconds, or offload slow handlers)",
                op.key,
            )
            error = LeaseLostError(f"lease on {op.key} lost while {op.event.event} handlers ran")
            report = ReportOp(error, op.event)
            if self._on_error is None:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._report_sync(report)  # from the renewal thread
                return
            task = loop.create_task(self._report_async(report))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        return lost

    def _release_in_background(self, op: ReleaseOp) -> None:
        """Best-effort, owner-checked release that never delays the answer."""
        store = self._store
        assert store is not None

        def release() -> None:
            try:
                store.release(op.key, op.owner)
            except Exception as exc:
                logger.debug("best-effort release of %s failed: %s", op.key, exc)

        threading.Thread(target=release, name="commet-webhooks-release", daemon=True).start()

    def _handler_pool(self) -> ThreadPoolExecutor:
        """Sync handlers' own threads, so store calls never queue behind them."""
        pid = os.getpid()
        if self._pool is None or self._pool_pid != pid:
            with self._pool_lock:
                if self._pool is None or self._pool_pid != pid:
                    self._pool = ThreadPoolExecutor(
                        self.handler_threads, thread_name_prefix="commet-webhooks-handler"
                    )
                    self._pool_pid = pid
        return self._pool

    # ------------------------------------------------------------ async driver

    async def _handle_async(
        self, body: Any, headers: Mapping[str, str], *, offload: bool, fresh: bool = True
    ) -> WebhookResponse:
        started, token, admission = self._start(body, headers, fresh)
        try:
            run = self._direct(admission, offload)
            if run is not None:
                if run.handlers:
                    errors = await self._gather_handlers(run, token, [])
                    if errors:
                        settle = self._settle(admission, errors)
                        return await self._drive_async(settle, started, token)
                return self._finished(_handled(run.event), started, token)
            flow = self._flow(admission, offload)
            if isinstance(flow, WebhookResponse):
                return self._finished(flow, started, token)
            return await self._drive_async(flow, started, token)
        except asyncio.CancelledError:
            if self.observer is not None:
                # Nothing is answered, and Commet counts the attempt as failed: the
                # observer hears of it (metrics, the failure streak, the span).
                cancelled = answers.CANCELLED
                if type(admission) is Admitted:
                    cancelled = cancelled.with_event(admission.event)
                self._finished(cancelled, started, token)
            raise

    async def _drive_async(self, flow: Flow, started: float, token: Any) -> WebhookResponse:
        """Execute the pipeline's operations with ``await`` until it answers."""
        try:
            op = next(flow)
            while True:
                try:
                    result = await self._execute_async(op, token)
                except BaseException as exc:  # store down, or cancelled: the flow decides
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return self._finished(stop.value, started, token)

    async def _execute_async(self, op: Op, token: Any) -> Any:
        if isinstance(op, RunOp):
            return await self._run_async(op, token)
        if isinstance(op, PublishOp):
            assert self._offload is not None
            return await self._offload.apublish(self._offloaded(op.admitted, token))
        if isinstance(op, ReportOp):
            await self._report_async(op)
            return None
        call = self._store_call(op)
        if call is None:
            return None
        name, args = call
        with self._store_scope(token, op):
            try:
                return await getattr(self._store, "a" + name)(*args)
            except Exception as exc:
                raise _store_error(exc) from exc

    async def _run_async(self, op: RunOp, token: Any) -> HandlerErrors:
        keeper = None
        if op.key and self._renew_every is not None:
            keeper = AsyncLeaseKeeper(
                self._store, op.key, op.owner, self._renew_every, self._lease_lost(op)
            )
        threads: list[Future[Any]] = []
        try:
            return await self._gather_handlers(op, token, threads)
        except BaseException as exc:
            if any(not thread.done() for thread in threads):
                # handle() was cancelled while a sync handler still runs in its thread:
                # releasing now would let a retry run it concurrently.
                logger.warning(
                    "delivery of %s %s interrupted while a sync handler still runs; its "
                    "claim is kept and expires after lease_seconds",
                    op.event.event,
                    op.event.id or "",
                )
                setattr(exc, KEEP_CLAIM, True)
            raise
        finally:
            if keeper is not None:
                keeper.stop()

    async def _gather_handlers(
        self, op: RunOp, token: Any, threads: list[Future[Any]]
    ) -> HandlerErrors:
        event = op.event
        if len(op.handlers) == 1:
            handler = op.handlers[0]
            try:
                if handler.is_async and self.observer is None:
                    await handler.fn(event)  # the usual case, without two more frames
                else:
                    await self._call_handler_async(handler, event, token, threads)
            except Exception as exc:
                return [(handler, exc)]
            return []
        results = await asyncio.gather(
            *(self._call_handler_async(h, event, token, threads) for h in op.handlers),
            return_exceptions=True,
        )
        errors: HandlerErrors = []
        for handler, result in zip(op.handlers, results, strict=True):
            if isinstance(result, Exception):
                errors.append((handler, result))
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def _call_handler_async(
        self,
        handler: Registered,
        event: Any,
        token: Any,
        threads: list[Future[Any]] | None = None,
    ) -> None:
        if self.observer is None:
            await self._call_async(handler, event, threads=threads)
            return
        scope: contextlib.AbstractContextManager[None]
        if _records(token):
            scope = _Timed(token, "handler", handler.name)
        else:
            scope = self.observer.handler(token, handler.name, event.event)
        with scope:
            await self._call_async(handler, event, threads=threads)

    async def _call_async(
        self, handler: Registered, *args: Any, threads: list[Future[Any]] | None = None
    ) -> None:
        """Run a handler from async code; a sync handler runs in the handler pool."""
        if handler.is_async:
            await handler.fn(*args)
            return
        # The handler sees the caller's context variables (tracing spans, request ids).
        thread = self._handler_pool().submit(contextvars.copy_context().run, handler.fn, *args)
        if threads is not None:
            threads.append(thread)
        result = await asyncio.wrap_future(thread)
        if inspect.isawaitable(result):
            await result

    async def _report_async(self, op: ReportOp) -> None:
        reporter = self._on_error
        if reporter is None:
            return
        try:
            await self._call_async(reporter, op.error, op.subject)
        except Exception:
            logger.exception("on_error itself raised")

    # ------------------------------------------------------------ sync driver

    def _handle_sync(
        self, body: Any, headers: Mapping[str, str], *, offload: bool, fresh: bool = True
    ) -> WebhookResponse:
        started, token, admission = self._start(body, headers, fresh)
        run = self._direct(admission, offload)
        if run is not None:
            if run.handlers:
                errors = self._call_handlers_sync(run, token)
                if errors:
                    return self._drive_sync(self._settle(admission, errors), started, token)
            return self._finished(_handled(run.event), started, token)
        flow = self._flow(admission, offload)
        if isinstance(flow, WebhookResponse):
            return self._finished(flow, started, token)
        return self._drive_sync(flow, started, token)

    def _drive_sync(self, flow: Flow, started: float, token: Any) -> WebhookResponse:
        """Execute the pipeline's operations with plain calls until it answers."""
        try:
            op = next(flow)
            while True:
                try:
                    result = self._execute_sync(op, token)
                except BaseException as exc:  # store down, or interrupted
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return self._finished(stop.value, started, token)

    def _execute_sync(self, op: Op, token: Any) -> Any:
        if isinstance(op, RunOp):
            return self._run_sync(op, token)
        if isinstance(op, PublishOp):
            assert self._offload is not None
            return self._offload.publish(self._offloaded(op.admitted, token))
        if isinstance(op, ReportOp):
            self._report_sync(op)
            return None
        call = self._store_call(op)
        if call is None:
            return None
        name, args = call
        method = getattr(self._store, name)
        if self.observer is not None and _records(token):
            # Timed here rather than by a scope object, as handlers are: this is every
            # instrumented delivery's path when there is a store.
            began = perf_counter()
            try:
                result = method(*args)
            except BaseException as exc:
                token.append(("store", _OPERATION_NAMES[type(op)], perf_counter() - began, True))
                if isinstance(exc, Exception):
                    raise _store_error(exc) from exc
                raise
            token.append(("store", _OPERATION_NAMES[type(op)], perf_counter() - began, False))
            return result
        with self._store_scope(token, op):
            try:
                return method(*args)
            except Exception as exc:
                raise _store_error(exc) from exc

    def _run_sync(self, op: RunOp, token: Any) -> HandlerErrors:
        if not op.key or self._renew_every is None:
            return self._call_handlers_sync(op, token)
        watch = self._renewer.watch(
            self._store, op.key, op.owner, self._renew_every, self._lease_lost(op)
        )
        try:
            return self._call_handlers_sync(op, token)
        finally:
            self._renewer.unwatch(watch)

    def _call_handlers_sync(self, op: RunOp, token: Any) -> HandlerErrors:
        errors: HandlerErrors = []
        pending_async = []
        observer = self.observer
        record = observer is not None and _records(token)
        event = op.event
        for handler in op.handlers:
            if handler.is_async:
                pending_async.append(handler)
                continue
            try:
                if observer is None:
                    result = handler.fn(event)
                elif record:
                    # Timed here rather than by a scope object: this is every
                    # instrumented delivery's path.
                    began = perf_counter()
                    try:
                        result = handler.fn(event)
                    except BaseException:
                        token.append(("handler", handler.name, perf_counter() - began, True))
                        raise
                    token.append(("handler", handler.name, perf_counter() - began, False))
                else:
                    with observer.handler(token, handler.name, event.event):
                        result = handler.fn(event)
                if result is not None and inspect.isawaitable(result):
                    run_blocking(result)
            except Exception as exc:
                errors.append((handler, exc))
        if pending_async:
            calls = [self._call_handler_async(h, op.event, token) for h in pending_async]
            results = run_blocking(gather_settled(calls))
            for handler, result in zip(pending_async, results, strict=True):
                if isinstance(result, Exception):
                    errors.append((handler, result))
        return errors

    def _report_sync(self, op: ReportOp) -> None:
        reporter = self._on_error
        if reporter is None:
            return
        try:
            result = reporter.fn(op.error, op.subject)
            if inspect.isawaitable(result):
                run_blocking(result)
        except Exception:
            logger.exception("on_error itself raised")


def _records(token: Any) -> bool:
    """Whether the core writes this delivery's steps on its token (a :class:`DeliveryRecord`
    not ``scoped``) instead of calling the observer's hooks between start and finish."""
    return isinstance(token, DeliveryRecord) and not token.scoped


class _Timed:
    """Times one call for a :class:`DeliveryRecord` and appends what it measured."""

    __slots__ = ("_began", "_kind", "_name", "_record")

    def __init__(self, record: DeliveryRecord, kind: str, name: str) -> None:
        self._record, self._kind, self._name = record, kind, name

    def __enter__(self) -> None:
        self._began = perf_counter()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._record.append((self._kind, self._name, perf_counter() - self._began, exc is not None))


_NO_SCOPE = contextlib.nullcontext()
_NO_HEADERS: Mapping[str, str] = {}
_OPERATION_NAMES: dict[type, str] = {ClaimOp: "claim", CompleteOp: "complete", ReleaseOp: "release"}


def _quietly(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an observer hook; one that raises is logged, never allowed to change an answer."""
    try:
        return fn(*args)
    except Exception:
        _hook_failed(fn)
        return None


def _hook_failed(fn: Callable[..., Any]) -> None:
    """Log the exception an observer hook raised (called from its ``except`` block)."""
    logger.exception("observer hook %s raised", getattr(fn, "__qualname__", fn))


def _store_error(exc: Exception) -> StoreUnavailableError:
    if isinstance(exc, StoreUnavailableError):
        return exc
    return unavailable("idempotency store", exc)


