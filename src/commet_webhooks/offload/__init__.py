"""What every task-queue engine shares: the worker side of ``Webhooks(offload=...)``.

The engines themselves live in :mod:`commet_webhooks.celery` and
:mod:`commet_webhooks.offload.dramatiq`; both are small layers over the pieces here:

- :func:`resolve_webhooks` turns what the user passed (a ``Webhooks``, a zero-argument
  factory, or a ``"module:attribute"`` string) into the worker's ``Webhooks``, once
  per process (after a fork, again), so a module-level receiver can name itself;
- :data:`RETRY_OUTCOMES` / :data:`DEAD_OUTCOMES` say what a worker does with
  ``handle_offloaded``'s answer;
- :func:`backoff` is the exponential delay between attempts;
- :func:`delivery_scope` restores the tracing context an observer injected on the
  receiver and puts the event's id and type on every log record the worker writes
  meanwhile (``record.commet_event_id``, ``record.commet_event_type``,
  ``record.commet_received_at``);
- :class:`DeadLetter` is the record written when a delivery gives up, and
  :func:`report_dead_letter` hands it to the receiver's ``on_error``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
import os
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._offload import Offload, OffloadedDelivery
from .._responses import Outcome
from .._wire import iso_time
from ..errors import WebhookError

__all__ = [
    "DEAD_OUTCOMES",
    "DONE_OUTCOMES",
    "RETRY_OUTCOMES",
    "DeadLetter",
    "DeadLetteredError",
    "Offload",
    "OffloadedDelivery",
    "WebhooksSource",
    "backoff",
    "current_delivery",
    "delivery_scope",
    "install_log_context",
    "parse_message",
    "report_dead_letter",
    "resolve_webhooks",
    "run_delivery",
]

logger = logging.getLogger("commet_webhooks.offload")

WebhooksSource = Any
"""A ``Webhooks``, a zero-argument callable returning one, or ``"package.module:name"``."""

RETRY_OUTCOMES = frozenset({Outcome.HANDLER_ERROR, Outcome.BUSY, Outcome.STORE_UNAVAILABLE})
"""Worth another attempt later: a handler failed, another worker holds the lease, the
store is down."""
DONE_OUTCOMES = frozenset({Outcome.OK, Outcome.DUPLICATE, Outcome.ACCEPTED_RAW})
"""Final and fine: handled (now or before)."""
DEAD_OUTCOMES = frozenset({Outcome.INVALID_SIGNATURE, Outcome.INVALID_PAYLOAD})
"""Final and wrong: a retry cannot change them (a forged message, or a worker that lacks
the secret the receiver used); they go to the dead letters at once."""


class DeadLetteredError(WebhookError):
    """What ``on_error`` receives when a delivery gives up and becomes a dead letter."""

    def __init__(self, record: DeadLetter) -> None:
        self.record = record
        super().__init__(
            f"{record.event_type} {record.event_id or ''} gave up after "
            f"{record.attempts} attempt(s): {record.reason}"
        )


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that will not be retried any more, with why; replayable as it is."""

    message: dict[str, Any]
    """``OffloadedDelivery.to_message()`` (or, for a malformed message, what arrived)."""
    reason: str
    """The last outcome (``handler_error``, ``busy``, ``invalid_signature``...) or error."""
    attempts: int
    failed_at: str = field(default_factory=lambda: iso_time(datetime.now(timezone.utc)))

    @property
    def event_id(self) -> str | None:
        value = self.message.get("event_id")
        return None if value is None else str(value)

    @property
    def event_type(self) -> str:
        return str(self.message.get("event_type") or "unknown")

    def to_record(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DeadLetter:
        return cls(
            message=dict(record["message"]),
            reason=str(record["reason"]),
            attempts=int(record["attempts"]),
            failed_at=str(record["failed_at"]),
        )

    def delivery(self) -> OffloadedDelivery:
        """The delivery to replay; ``ValueError`` when the message was malformed."""
        return OffloadedDelivery.from_message(self.message)


# ---------------------------------------------------------------- the worker's Webhooks


class _Resolved:
    def __init__(self, source: WebhooksSource) -> None:
        if not (isinstance(source, str) or callable(source) or _is_webhooks(source)):
            raise TypeError("webhooks must be a Webhooks, a zero-argument factory or 'module:name'")
        self.source = source
        self._lock = threading.Lock()
        self._value: Any = None
        self._pid = 0

    def get(self) -> Any:
        pid = os.getpid()
        if self._value is None or self._pid != pid:
            with self._lock:
                if self._value is None or self._pid != pid:
                    self._value = _load(self.source)
                    self._pid = pid
        return self._value


def _is_webhooks(value: Any) -> bool:
    return callable(getattr(value, "handle_offloaded", None))


def _load(source: WebhooksSource) -> Any:
    if _is_webhooks(source):
        return source
    if isinstance(source, str):
        module_name, _, attribute = source.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"expected 'package.module:name', got {source!r}")
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
        if not _is_webhooks(value) and callable(value):
            value = value()
    else:
        value = source()
    if not _is_webhooks(value):
        raise TypeError(f"{source!r} did not give a Webhooks (got {type(value).__name__})")
    return value


def resolve_webhooks(source: WebhooksSource) -> Callable[[], Any]:
    """A getter for the worker's ``Webhooks``, resolved lazily once per process.

    Lazily, because the receiver usually passes the offload to ``Webhooks(offload=...)``
    and so cannot hand over the finished object yet; per process, because a forked pool
    child must not share its parent's store connections. The worker uses the *same*
    ``Webhooks`` as the receiver (same secrets, handlers and store); it never offloads
    again, as ``handle_offloaded`` always runs the handlers in place.
    """
    return _Resolved(source).get


# ---------------------------------------------------------------- retries


def backoff(attempt: int, base: float, maximum: float, *, jitter: bool = True) -> float:
    """Seconds before retry number ``attempt + 1``: ``base * 2**attempt``, capped, jittered.

    The jitter (up to a quarter of the delay) spreads workers that failed together.
    """
    delay: float = min(maximum, base * (2 ** max(0, attempt)))
    if jitter:
        delay += random.uniform(0, delay / 4)  # noqa: S311 - spreading, not security
    return min(maximum, delay)


def parse_message(message: Any, attempt: int) -> OffloadedDelivery | DeadLetter:
    """The delivery a broker message carries, or the dead letter a malformed one becomes."""
    try:
        return OffloadedDelivery.from_message(message)
    except ValueError as exc:
        raw = message if isinstance(message, dict) else {"raw": repr(message)}
        return DeadLetter(raw, f"malformed message: {exc}", attempt + 1)


def run_delivery(webhooks: Any, delivery: OffloadedDelivery) -> tuple[Outcome, Any]:
    """One worker attempt: the outcome of handling ``delivery`` and the event, if any.

    The receiver checked the timestamp at the door; a retry minutes later must not
    fail on the age of the event, so the worker skips that check (never the signature).
    """
    try:
        response = webhooks.handle_offloaded(delivery, check_tolerance=False)
    except Exception:
        # handle_offloaded answers every input; this is a bug or a crash in an on_error
        # reporter. Never lose the delivery over it: retry.
        logger.exception("handling %s failed", delivery.event_id or delivery.event_type)
        return Outcome.HANDLER_ERROR, None
    return response.outcome, response.event


def report_dead_letter(webhooks: Any, record: DeadLetter, subject: Any = None) -> None:
    """Give up loudly: log, then call the ``Webhooks``' ``on_error`` with the dead letter."""
    logger.error(
        "giving up on %s %s after %d attempt(s): %s; kept as a dead letter",
        record.event_type,
        record.event_id or "",
        record.attempts,
        record.reason,
    )
    if subject is None:
        subject = str(record.message.get("body", "")).encode("latin-1", "replace")
    webhooks.report_error(DeadLetteredError(record), subject)


# ---------------------------------------------------------------- tracing and logs

_CURRENT: contextvars.ContextVar[OffloadedDelivery | None] = contextvars.ContextVar(
    "commet_webhooks_offloaded_delivery", default=None
)
_factory_lock = threading.Lock()
_factory_installed = False


def current_delivery() -> OffloadedDelivery | None:
    """The delivery this worker is handling right now (inside :func:`delivery_scope`)."""
    return _CURRENT.get()


def install_log_context() -> None:
    """Give every log record ``commet_event_id``, ``commet_event_type`` and
    ``commet_received_at`` (``"-"`` outside a delivery), so a format such as
    ``"%(commet_event_type)s %(commet_event_id)s %(message)s"`` lines worker logs up with
    the receiver's. Idempotent; wraps the current log record factory."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            delivery = _CURRENT.get()
            if delivery is None:
                record.commet_event_id = record.commet_event_type = "-"
                record.commet_received_at = "-"
            else:
                record.commet_event_id = delivery.event_id or "-"
                record.commet_event_type = delivery.event_type
                record.commet_received_at = delivery.received_at
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


@contextlib.contextmanager
def delivery_scope(webhooks: Any, delivery: OffloadedDelivery) -> Iterator[None]:
    """Around one worker attempt: the event on log records, the receiver's trace restored.

    With ``commet_webhooks.observability`` installed on the ``Webhooks`` (``instrument``),
    the W3C context the receiver injected is made current (``continue_trace``). Any other
    observer that defines ``extract_context(context) -> context manager | None`` (the
    counterpart of ``inject_context``) also gets the context the receiver injected, and the
    attempt runs inside what it returns (an OpenTelemetry observer attaches the remote
    parent there, so the worker's spans join the receiver's trace).
    """
    token = _CURRENT.set(delivery)
    try:
        with contextlib.ExitStack() as stack:
            observer = getattr(webhooks, "observer", None)
            if observer is not None and delivery.context:
                # commet_webhooks.observability (instrument()): the worker's span joins
                # the receiver's trace. A no-op without OpenTelemetry.
                try:
                    from ..observability import continue_trace
                except ImportError:
                    pass
                else:
                    stack.enter_context(continue_trace(delivery))
            extract = getattr(observer, "extract_context", None)
            if extract is not None and delivery.context:
                try:
                    scope = extract(dict(delivery.context))
                    if scope is not None:
                        stack.enter_context(scope)
                except Exception:
                    logger.exception("observer extract_context raised")
            yield
    finally:
        _CURRENT.reset(token)
