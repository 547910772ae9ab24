"""``Webhooks``: raw body + headers in, ``WebhookResponse`` out.

The pipeline is verify -> parse -> dedupe -> run handlers -> answer. It is written
once, as a generator that *yields* the I/O it needs (claim, run handlers, complete,
release, report an error) and receives the results; :meth:`Webhooks.handle` drives
it with ``await`` and :meth:`Webhooks.handle_sync` drives it with plain calls. No
socket, no framework object: adapters translate a request into ``(body, headers)``
and the returned :class:`WebhookResponse` back.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import secrets as _secrets
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Union, cast

import msgspec

from ._signing import SecretKeys
from .errors import PayloadError, StoreUnavailableError
from .events import (
    EVENT_TYPES,
    EventType,
    InvoiceCreated,
    PaymentFailed,
    PaymentReceived,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionUpdated,
    WebhookEvent,
    decode_event,
)
from .stores._base import Claim, IdempotencyStore, unavailable

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ErrorHandler",
    "Handler",
    "WebhookResponse",
    "Webhooks",
]

logger = logging.getLogger("commet_webhooks")

SIGNATURE_HEADER = "X-Commet-Signature"
EVENT_TYPE_HEADER = "X-Commet-Event"
TIMESTAMP_HEADER = "X-Commet-Timestamp"
EVENT_ID_HEADER = "X-Commet-Event-Id"

DEFAULT_MAX_BODY_BYTES = 1_048_576

Handler = Callable[[Any], Awaitable[None] | None]
"""A handler takes the typed event; it may be a plain or an ``async`` function."""
ErrorHandler = Callable[[BaseException, WebhookEvent | bytes], Awaitable[None] | None]
"""``on_error(exc, event_or_raw_body)``: plain or ``async``."""

_JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class WebhookResponse:
    """What to answer Commet: a status, a JSON body and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: dict(_JSON))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _response(status: int, body: bytes, **extra_headers: str) -> WebhookResponse:
    return WebhookResponse(status, body, {**_JSON, **extra_headers})


def _json_response(status: int, payload: Mapping[str, object]) -> WebhookResponse:
    return _response(status, msgspec.json.encode(payload))


def _invalid_payload(detail: str) -> WebhookResponse:
    return _json_response(400, {"received": False, "error": "Invalid payload", "detail": detail})


# Fixed answers are built once.
_OK = _response(200, b'{"received":true}')
_DUPLICATE = _response(200, b'{"received":true,"duplicate":true}')
_INVALID_SIGNATURE = _response(403, b'{"received":false,"error":"Invalid signature"}')
_IN_PROGRESS = _response(
    409,
    b'{"received":false,"error":"Event is being processed by another worker"}',
    **{"retry-after": "60"},
)
_TOO_LARGE = _response(413, b'{"received":false,"error":"Payload too large"}')
_NOT_ALLOWED = _response(405, b'{"received":false,"error":"Method not allowed"}', allow="POST")
_UNAVAILABLE = _response(
    503, b'{"received":false,"error":"Idempotency store unavailable"}', **{"retry-after": "60"}
)


class HandlerKeywords(TypedDict, total=False):
    """The ``on_<event>`` keywords of :class:`Webhooks`, one per modelled event type."""

    on_subscription_created: Callable[[SubscriptionCreated], Awaitable[None] | None]
    on_subscription_activated: Callable[[SubscriptionActivated], Awaitable[None] | None]
    on_subscription_canceled: Callable[[SubscriptionCanceled], Awaitable[None] | None]
    on_subscription_updated: Callable[[SubscriptionUpdated], Awaitable[None] | None]
    on_subscription_plan_changed: Callable[[SubscriptionPlanChanged], Awaitable[None] | None]
    on_payment_received: Callable[[PaymentReceived], Awaitable[None] | None]
    on_payment_failed: Callable[[PaymentFailed], Awaitable[None] | None]
    on_invoice_created: Callable[[InvoiceCreated], Awaitable[None] | None]


_F = TypeVar("_F", bound=Callable[..., Any])

_KEYWORD_TO_EVENT = {spec.handler_keyword: name for name, spec in EVENT_TYPES.items()}


def _is_async_callable(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


@dataclass(frozen=True)
class _Registered:
    fn: Callable[..., Any]
    is_async: bool

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


# ------------------------------------------------------------------ pipeline ops
# The generator yields these; the sync and async drivers execute them.


@dataclass(frozen=True)
class _ClaimOp:
    key: str
    owner: str


@dataclass(frozen=True)
class _CompleteOp:
    key: str
    owner: str


@dataclass(frozen=True)
class _ReleaseOp:
    key: str
    owner: str


@dataclass(frozen=True)
class _RunOp:
    event: WebhookEvent
    handlers: tuple[_Registered, ...]


@dataclass(frozen=True)
class _ReportOp:
    error: BaseException
    subject: WebhookEvent | bytes


_Op = Union[_ClaimOp, _CompleteOp, _ReleaseOp, _RunOp, _ReportOp]  # noqa: UP007
_Flow = Generator[_Op, Any, WebhookResponse]


class Webhooks:
    """Verify, parse, deduplicate and route Commet webhooks.

    >>> webhooks = Webhooks(webhook_secret="whsec_...", on_payment_failed=dunning)
    >>> response = await webhooks.handle(body, headers)

    ``on_payload`` sees every verified event, concurrently with the specific handlers.
    ``on_error(exc, event_or_raw_body)`` sees handler errors and invalid payloads.
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
        **handlers: Unpack[HandlerKeywords],
    ) -> None:
        unknown = sorted(set(handlers) - set(_KEYWORD_TO_EVENT))
        if unknown:
            valid = ", ".join(sorted(_KEYWORD_TO_EVENT))
            raise TypeError(
                f"unknown handler keyword(s) {', '.join(unknown)}; valid keywords are "
                f"on_payload, on_error and {valid}"
            )
        if not isinstance(max_body_bytes, int) or max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be a positive integer")
        if tolerance is not None and not tolerance > 0:
            raise ValueError("tolerance must be a positive number of seconds or None")
        self._keys = SecretKeys(webhook_secret)
        self._store = idempotency_store
        self.retry_on_handler_error = bool(retry_on_handler_error)
        self.max_body_bytes = max_body_bytes
        self.tolerance = tolerance
        self._handlers: dict[str, list[_Registered]] = {}
        self._catch_all: list[_Registered] = []
        self._on_error: _Registered | None = None
        # event type -> handlers to run, rebuilt whenever a handler is added
        self._plan: dict[str, tuple[_Registered, ...]] = {}
        self._unknown_plan: tuple[_Registered, ...] = ()
        for keyword, fn in handlers.items():
            if fn is not None:
                self.on(_KEYWORD_TO_EVENT[keyword])(cast("Handler", fn))
        if on_payload is not None:
            self.on_payload(on_payload)
        if on_error is not None:
            self.on_error(on_error)
        self._rebuild_plan()

    def __repr__(self) -> str:
        events = sorted(self._handlers)
        return (
            f"Webhooks(secrets={len(self._keys)} redacted, handlers={events}, "
            f"catch_all={len(self._catch_all)}, store={self._store!r})"
        )

    # ------------------------------------------------------------ registration

    def on(self, event_type: str | EventType) -> Callable[[_F], _F]:
        """Decorator: register a handler for ``event_type``. Several per event are fine.

        Any event type may be named; one this library does not model reaches its
        handlers as an :class:`~commet_webhooks.UnknownEvent`.
        """
        name = event_type.value if isinstance(event_type, EventType) else event_type
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"invalid event type {event_type!r}")

        def register(fn: _F) -> _F:
            self._handlers.setdefault(name, []).append(_registered(fn))
            self._rebuild_plan()
            return fn

        return register

    def on_payload(self, fn: _F) -> _F:
        """Decorator: register a catch-all handler that sees every verified event."""
        self._catch_all.append(_registered(fn))
        self._rebuild_plan()
        return fn

    def on_error(self, fn: ErrorHandler) -> ErrorHandler:
        """Decorator: set the error reporter, called as ``fn(exc, event_or_raw_body)``."""
        self._on_error = _registered(fn)
        return fn

    def _rebuild_plan(self) -> None:
        catch_all = tuple(self._catch_all)
        self._plan = {name: tuple(hs) + catch_all for name, hs in self._handlers.items()}
        self._unknown_plan = catch_all

    def handlers_for(self, event_type: str) -> tuple[Callable[..., Any], ...]:
        """The handlers that would run for ``event_type`` (catch-all included)."""
        return tuple(r.fn for r in self._plan.get(event_type, self._unknown_plan))

    @property
    def idempotency_store(self) -> IdempotencyStore | None:
        return self._store

    # ------------------------------------------------------------ entry points

    async def handle(
        self, body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookResponse:
        """Process one delivery and return the answer for Commet (never raises for bad input)."""
        flow = self._flow(body, headers)
        try:
            op = next(flow)
            while True:
                try:
                    result = await self._execute_async(op)
                except BaseException as exc:  # cancelled: let the flow free its claim
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
        runs elsewhere.
        """
        flow = self._flow(body, headers)
        try:
            op = next(flow)
            while True:
                try:
                    result = self._execute_sync(op)
                except BaseException as exc:  # interrupted: let the flow free its claim
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
            return _NOT_ALLOWED
        if content_length is not None:
            try:
                declared = int(content_length)
            except (TypeError, ValueError):
                return None  # the body read will enforce the limit
            if declared > self.max_body_bytes:
                return _TOO_LARGE
        return None

    def too_large(self) -> WebhookResponse:
        """The 413 answer, for adapters that stop reading a body past the limit."""
        return _TOO_LARGE

    # ------------------------------------------------------------ the pipeline

    def _flow(
        self, body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> _Flow:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        elif not isinstance(body, bytes):
            body = bytes(body)
        if len(body) > self.max_body_bytes:
            logger.warning("rejected webhook: body of %d bytes exceeds the limit", len(body))
            return _TOO_LARGE
        signature = get_header(headers, "x-commet-signature")
        if signature is None or not self._keys.verify(body, signature):
            logger.warning(
                "rejected webhook: %s signature",
                "missing" if signature is None else "invalid",
            )
            return _INVALID_SIGNATURE
        try:
            event = decode_event(body)
        except PayloadError as exc:
            logger.warning("rejected webhook: %s", exc)
            yield _ReportOp(exc, body)
            return _invalid_payload(str(exc))
        if self.tolerance is not None:
            age = abs((datetime.now(timezone.utc) - event.timestamp).total_seconds())
            if age > self.tolerance:
                logger.warning("rejected webhook %s: timestamp outside tolerance", event.id)
                return _invalid_payload("event timestamp is outside the accepted tolerance")

        handlers = self._plan.get(event.event, self._unknown_plan)
        key = owner = ""
        if self._store is not None:
            key = (
                event.id
                or get_header(headers, "x-commet-event-id")
                or hashlib.sha256(body).hexdigest()
            )
            owner = _secrets.token_hex(16)
            claim = yield _ClaimOp(key, owner)
            if isinstance(claim, BaseException):
                yield _ReportOp(claim, event)
                return _UNAVAILABLE
            if claim is Claim.DONE:
                logger.info("duplicate webhook %s (%s) ignored", key, event.event)
                return _DUPLICATE
            if claim is Claim.BUSY:
                logger.info("webhook %s (%s) is being processed elsewhere", key, event.event)
                return _IN_PROGRESS

        errors: list[tuple[_Registered, BaseException]] = []
        if handlers:
            try:
                errors = yield _RunOp(event, handlers)
            except BaseException:
                # Cancelled or interrupted mid-handler: free the claim for the retry.
                if key:
                    yield _ReleaseOp(key, owner)
                raise
        for registered, error in errors:
            logger.error(
                "handler %s failed for %s %s",
                registered.name,
                event.event,
                event.id or "",
                exc_info=(type(error), error, error.__traceback__),
            )
            yield _ReportOp(error, event)

        if errors:
            if key:
                outcome = yield _ReleaseOp(key, owner)
                if isinstance(outcome, BaseException):
                    logger.error("could not release %s; its lease will expire: %r", key, outcome)
            names = sorted({type(e).__name__ for _, e in errors})
            message = f"{len(errors)} handler(s) failed: {', '.join(names)}"
            if self.retry_on_handler_error:
                return _json_response(500, {"received": False, "error": message})
            return _json_response(200, {"received": True, "warning": message})

        if key:
            outcome = yield _CompleteOp(key, owner)
            if outcome is False:
                # The lease ran out while handlers ran and another delivery took the
                # key over: the handlers may run twice. Raise lease_seconds.
                logger.warning(
                    "lease on %s expired before its handlers finished; raise lease_seconds", key
                )
            elif isinstance(outcome, BaseException):
                # Handlers ran: answering an error would run them again on retry.
                logger.error("could not mark %s done: %r", key, outcome)
                yield _ReportOp(outcome, event)
        logger.debug("handled webhook %s (%s)", event.id or key, event.event)
        return _OK

    # ------------------------------------------------------------ async driver

    async def _execute_async(self, op: _Op) -> Any:
        store = self._store
        if isinstance(op, _RunOp):
            return await self._run_async(op)
        if isinstance(op, _ReportOp):
            await self._report_async(op)
            return None
        assert store is not None
        try:
            if isinstance(op, _ClaimOp):
                return await store.aclaim(op.key, op.owner)
            if isinstance(op, _CompleteOp):
                return await store.acomplete(op.key, op.owner)
            return await store.arelease(op.key, op.owner)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _store_error(exc)

    async def _run_async(self, op: _RunOp) -> list[tuple[_Registered, BaseException]]:
        event = op.event
        if len(op.handlers) == 1:
            registered = op.handlers[0]
            try:
                await _call_async(registered, event)
            except Exception as exc:
                return [(registered, exc)]
            return []
        results = await asyncio.gather(
            *(_call_async(r, event) for r in op.handlers), return_exceptions=True
        )
        errors: list[tuple[_Registered, BaseException]] = []
        for registered, result in zip(op.handlers, results, strict=True):
            if isinstance(result, Exception):
                errors.append((registered, result))
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def _report_async(self, op: _ReportOp) -> None:
        reporter = self._on_error
        if reporter is None:
            return
        try:
            await _call_async(reporter, op.error, op.subject)
        except Exception:
            logger.exception("on_error itself raised")

    # ------------------------------------------------------------ sync driver

    def _execute_sync(self, op: _Op) -> Any:
        store = self._store
        if isinstance(op, _RunOp):
            return self._run_sync(op)
        if isinstance(op, _ReportOp):
            self._report_sync(op)
            return None
        assert store is not None
        try:
            if isinstance(op, _ClaimOp):
                return store.claim(op.key, op.owner)
            if isinstance(op, _CompleteOp):
                return store.complete(op.key, op.owner)
            return store.release(op.key, op.owner)
        except Exception as exc:
            return _store_error(exc)

    def _run_sync(self, op: _RunOp) -> list[tuple[_Registered, BaseException]]:
        errors: list[tuple[_Registered, BaseException]] = []
        pending_async = []
        for registered in op.handlers:
            if registered.is_async:
                pending_async.append(registered)
                continue
            try:
                result = registered.fn(op.event)
                if inspect.isawaitable(result):
                    run_blocking(_await(result))
            except Exception as exc:
                errors.append((registered, exc))
        if pending_async:
            results = run_blocking(
                _gather_settled([_call_async(r, op.event) for r in pending_async])
            )
            for registered, result in zip(pending_async, results, strict=True):
                if isinstance(result, Exception):
                    errors.append((registered, result))
        return errors

    def _report_sync(self, op: _ReportOp) -> None:
        reporter = self._on_error
        if reporter is None:
            return
        try:
            if reporter.is_async:
                run_blocking(_call_async(reporter, op.error, op.subject))
            else:
                result = reporter.fn(op.error, op.subject)
                if inspect.isawaitable(result):
                    run_blocking(_await(result))
        except Exception:
            logger.exception("on_error itself raised")


# ---------------------------------------------------------------------- helpers


def _registered(fn: Any) -> _Registered:
    if not callable(fn):
        raise TypeError(f"handler must be callable, got {type(fn).__name__}")
    return _Registered(fn, _is_async_callable(fn))


def _store_error(exc: Exception) -> BaseException:
    if isinstance(exc, StoreUnavailableError):
        return exc
    wrapped = unavailable("idempotency store", exc)
    wrapped.__cause__ = exc
    return wrapped


async def _call_async(registered: _Registered, *args: Any) -> None:
    """Run a handler from async code; a sync handler runs in a worker thread."""
    if registered.is_async:
        await registered.fn(*args)
        return
    result = await asyncio.to_thread(registered.fn, *args)
    if inspect.isawaitable(result):
        await result


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _gather_settled(coros: Iterable[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*coros, return_exceptions=True))


_thread_state = threading.local()


def run_blocking(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` to completion from synchronous code.

    Each thread keeps one private event loop (created on first use and reused, so a
    sync server does not pay for a new loop per request). If the calling thread
    already runs a loop, the coroutine runs on a short-lived helper thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_thread_state, "loop", None)
        if loop is None or loop.is_closed():
            loop = asyncio.new_event_loop()
            _thread_state.loop = loop
        return loop.run_until_complete(_await(coro))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_await(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="commet-webhooks-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def get_header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """Case-insensitive header lookup that tolerates plain dicts and bytes values.

    ``name`` is given in lower case.
    """
    try:
        value = headers.get(name)
        if value is None:
            value = headers.get(_canonical(name))
        if value is None:
            for key in headers:
                k = key.decode("latin-1") if isinstance(key, bytes) else str(key)
                if k.lower() == name:
                    value = headers[key]
                    break
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if value is None or not isinstance(value, str):
        return None
    return value


@functools.lru_cache(maxsize=32)
def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))
