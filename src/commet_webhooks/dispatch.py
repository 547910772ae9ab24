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
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import _responses as answers
from ._admission import Admitted, admit
from ._concurrency import gather_settled, loop_running_here, run_blocking
from ._envelope import WebhookEvent
from ._pipeline import ClaimOp, CompleteOp, Flow, HandlerErrors, Op, ReportOp, RunOp
from ._pipeline import process as _process
from ._responses import Outcome, WebhookResponse
from ._router import Handler, Registered, Router, check_keywords, registered
from ._signing import SecretKeys
from ._wire import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    get_header,
)
from .errors import StoreUnavailableError
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
        **handlers: Unpack[HandlerKeywords],
    ) -> None:
        check_keywords(handlers, extra="on_payload, on_error, routers")
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
        self._on_error: Registered | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
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

    @property
    def idempotency_store(self) -> IdempotencyStore | None:
        return self._store

    # ------------------------------------------------------------ entry points

    async def handle(
        self, body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Process one delivery and return the answer for Commet (never raises for bad input)."""
        admission = admit(body, headers, self._keys, self.max_body_bytes, self.tolerance)
        if not isinstance(admission, Admitted):
            if admission.error is not None:
                await self._report_async(ReportOp(admission.error, admission.body))
            return admission.response
        flow = self._flow(admission)
        if flow is None:
            return answers.OK.with_event(admission.event)
        op = next(flow)
        try:
            while True:
                try:
                    result = await self._execute_async(op)
                except BaseException as exc:  # store down, or cancelled: the flow decides
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            response: WebhookResponse = stop.value
            return response

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
        admission = admit(body, headers, self._keys, self.max_body_bytes, self.tolerance)
        if not isinstance(admission, Admitted):
            if admission.error is not None:
                self._report_sync(ReportOp(admission.error, admission.body))
            return admission.response
        flow = self._flow(admission)
        if flow is None:
            return answers.OK.with_event(admission.event)
        op = next(flow)
        try:
            while True:
                try:
                    result = self._execute_sync(op)
                except BaseException as exc:  # store down, or interrupted
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            response: WebhookResponse = stop.value
            return response

    def preflight(
        self, method: str, content_length: str | int | None = None
    ) -> WebhookResponse | None:
        """Checks an adapter makes before reading the body: 405 and a declared 413.

        Returns the answer to send at once, or None to go on and read the body.
        """
        if method.upper() != "POST":
            return answers.NOT_ALLOWED
        if content_length is not None:
            try:
                declared = int(content_length)
            except (TypeError, ValueError):
                return None  # the body read will enforce the limit
            if declared > self.max_body_bytes:
                return answers.TOO_LARGE
        return None

    def too_large(self) -> WebhookResponse:
        """The 413 answer, for adapters that stop reading a body past the limit."""
        return answers.TOO_LARGE

    # ------------------------------------------------------------ shared by both drivers

    def _flow(self, admitted: Admitted) -> Flow | None:
        """The pipeline for this delivery, or None when there is nothing to do."""
        if admitted.schema_error is not None:
            handlers = self.catch_all()  # never a typed handler with half an object
        else:
            handlers = self.plan_for(admitted.event.event)
        if not handlers and self._store is None and admitted.schema_error is None:
            return None
        return _process(
            admitted,
            handlers,
            use_store=self._store is not None,
            retry_on_handler_error=self.retry_on_handler_error,
        )

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

    async def _execute_async(self, op: Op) -> Any:
        if isinstance(op, RunOp):
            return await self._run_async(op)
        if isinstance(op, ReportOp):
            await self._report_async(op)
            return None
        store = self._store
        assert store is not None
        try:
            if isinstance(op, ClaimOp):
                return await store.aclaim(op.key, op.owner)
            if isinstance(op, CompleteOp):
                return await store.acomplete(op.key, op.owner)
            return await store.arelease(op.key, op.owner)
        except Exception as exc:
            raise _store_error(exc) from exc

    async def _run_async(self, op: RunOp) -> HandlerErrors:
        event = op.event
        if len(op.handlers) == 1:
            handler = op.handlers[0]
            try:
                await self._call_async(handler, event)
            except Exception as exc:
                return [(handler, exc)]
            return []
        results = await asyncio.gather(
            *(self._call_async(h, event) for h in op.handlers), return_exceptions=True
        )
        errors: HandlerErrors = []
        for handler, result in zip(op.handlers, results, strict=True):
            if isinstance(result, Exception):
                errors.append((handler, result))
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def _call_async(self, handler: Registered, *args: Any) -> None:
        """Run a handler from async code; a sync handler runs in the handler pool."""
        if handler.is_async:
            await handler.fn(*args)
            return
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._handler_pool(), handler.fn, *args)
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

    def _execute_sync(self, op: Op) -> Any:
        if isinstance(op, RunOp):
            return self._run_sync(op)
        if isinstance(op, ReportOp):
            self._report_sync(op)
            return None
        store = self._store
        assert store is not None
        try:
            if isinstance(op, ClaimOp):
                return store.claim(op.key, op.owner)
            if isinstance(op, CompleteOp):
                return store.complete(op.key, op.owner)
            return store.release(op.key, op.owner)
        except Exception as exc:
            raise _store_error(exc) from exc

    def _run_sync(self, op: RunOp) -> HandlerErrors:
        errors: HandlerErrors = []
        pending_async = []
        for handler in op.handlers:
            if handler.is_async:
                pending_async.append(handler)
                continue
            try:
                result = handler.fn(op.event)
                if inspect.isawaitable(result):
                    run_blocking(result)
            except Exception as exc:
                errors.append((handler, exc))
        if pending_async:
            results = run_blocking(gather_settled([h.fn(op.event) for h in pending_async]))
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


def _store_error(exc: Exception) -> StoreUnavailableError:
    if isinstance(exc, StoreUnavailableError):
        return exc
    return unavailable("idempotency store", exc)


