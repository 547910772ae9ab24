"""The claim -> run -> complete protocol for one admitted delivery, written once.

:func:`process` is a generator that *yields* the I/O it needs (claim, run handlers,
complete, release, report an error) and receives the results; ``Webhooks.handle``
drives it with ``await`` and ``Webhooks.handle_sync`` with plain calls. Every failure
of an operation — a store that is down, a cancellation — is *thrown into* the
generator at the ``yield`` that asked for it, so there is one error path.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Generator
from typing import Any, Protocol, Union, runtime_checkable

import msgspec

from . import _responses as answers
from ._admission import Admitted, Rejected
from ._envelope import WebhookEvent
from ._responses import Outcome, WebhookResponse
from ._router import Registered
from .errors import StoreUnavailableError
from .stores._base import Claim

__all__ = [
    "KEEP_CLAIM",
    "ClaimOp",
    "CompleteOp",
    "EventRecorder",
    "Flow",
    "Op",
    "PublishOp",
    "ReleaseOp",
    "ReportOp",
    "RunOp",
    "handled",
    "offloaded",
    "process",
    "rejected",
    "settle",
]

logger = logging.getLogger("commet_webhooks")


class ClaimOp(msgspec.Struct, frozen=True):
    key: str
    owner: str
    admitted: Admitted | None = None
    """The delivery itself, for stores that record what they claim (an inbox)."""


class CompleteOp(msgspec.Struct, frozen=True):
    key: str
    owner: str


class ReleaseOp(msgspec.Struct, frozen=True):
    key: str
    owner: str
    quiet: bool = False
    """Best effort, off the answer's path: after a claim whose answer never came back."""
    error: str = ""
    """Why the handlers failed (``Type: message``), for stores that record it."""


@runtime_checkable
class EventRecorder(Protocol):
    """A store that keeps what it claims — the body as signed, the event, failures.

    The dispatcher claims through :meth:`claim_event` instead of ``claim`` (one write
    on the hot path, not two) and releases a failed delivery through
    :meth:`release_failed`; everything else is the usual claim/complete/release.
    """

    def claim_event(self, key: str, owner: str, admitted: Admitted) -> Claim: ...

    async def aclaim_event(self, key: str, owner: str, admitted: Admitted) -> Claim: ...

    def release_failed(self, key: str, owner: str, error: str) -> bool: ...

    async def arelease_failed(self, key: str, owner: str, error: str) -> bool: ...


KEEP_CLAIM = "commet_webhooks_keep_claim"
"""Set on an exception thrown into the flow when handler threads still run: never
release the claim under them; the lease, no longer renewed, expires instead."""


class RunOp(msgspec.Struct, frozen=True):
    """Run ``handlers`` on ``event``; the result is ``[(handler, exception), ...]``."""

    event: WebhookEvent
    handlers: tuple[Registered, ...]
    key: str = ""
    owner: str = ""


class ReportOp(msgspec.Struct, frozen=True):
    error: BaseException
    subject: WebhookEvent | bytes


class PublishOp(msgspec.Struct, frozen=True):
    """Hand the delivery to the task queue (``offload=``); raises when not accepted."""

    admitted: Admitted


Op = Union[ClaimOp, CompleteOp, ReleaseOp, RunOp, ReportOp, PublishOp]  # noqa: UP007
Flow = Generator[Op, Any, WebhookResponse]
HandlerErrors = list[tuple[Registered, BaseException]]


def idempotency_key(admitted: Admitted) -> str:
    """The event's signed ``id``; for an id-less (seed-era) body, the SHA-256 of the body.

    The unsigned ``X-Commet-Event-Id`` header is deliberately not used: a replayed body
    with a chosen header could otherwise pre-claim another event's id (SECURITY.md).
    Commet's retries resend identical bytes, so the body hash dedupes them as well.
    """
    return admitted.event.id or hashlib.sha256(admitted.body).hexdigest()


def process(
    admitted: Admitted,
    handlers: tuple[Registered, ...],
    *,
    use_store: bool,
    retry_on_handler_error: bool,
) -> Flow:
    """Claim the event, run ``handlers``, then complete (or release) the claim."""
    event = admitted.event
    key = owner = ""
    if use_store:
        key = idempotency_key(admitted)
        owner = secrets.token_hex(16)
        try:
            claim = yield ClaimOp(key, owner, admitted)
        except StoreUnavailableError as exc:
            # The claim may still have landed (a timeout): free it if it is ours.
            yield ReleaseOp(key, owner, quiet=True)
            yield ReportOp(exc, event)
            return answers.UNAVAILABLE.with_event(event)
        if claim is Claim.DONE:
            logger.info("duplicate webhook %s (%s) ignored", key, event.event)
            return answers.DUPLICATE.with_event(event)
        if claim is Claim.BUSY:
            logger.info("webhook %s (%s) is being processed elsewhere", key, event.event)
            return answers.BUSY.with_event(event)

    errors: HandlerErrors = []
    if handlers:
        try:
            errors = yield RunOp(event, handlers, key, owner)
        except BaseException as exc:
            # Cancelled or interrupted mid-handler: free the claim for the retry,
            # unless a handler thread is still running (its lease will expire).
            if key and not getattr(exc, KEEP_CLAIM, False):
                yield from _release(key, owner)
            raise
    return (yield from settle(admitted, errors, key, owner, retry_on_handler_error))


def settle(
    admitted: Admitted,
    errors: HandlerErrors,
    key: str = "",
    owner: str = "",
    retry_on_handler_error: bool = False,
) -> Flow:
    """After the handlers ran: report failures, then complete or release the claim.

    A receiver without a store whose handlers all succeeded skips this flow and answers
    :func:`handled` directly: there is nothing to report, complete or release.
    """
    event = admitted.event
    for handler, error in errors:
        logger.error(
            "handler %s failed for %s %s",
            handler.name,
            event.event,
            event.id or "",
            exc_info=(type(error), error, error.__traceback__),
        )
        yield ReportOp(error, event)
    if admitted.schema_error is not None:
        yield ReportOp(admitted.schema_error, event)

    if errors or admitted.schema_error is not None:
        if key:
            yield from _release(key, owner, _describe(admitted, errors))
        # A drifted event alone is answered 200 even under retry_on_handler_error: a
        # retry cannot fit it to its class before an upgrade, and repeated failures
        # get the endpoint disabled. Handler errors keep the configured policy.
        return _failure_answer(admitted, errors, retry=retry_on_handler_error and bool(errors))

    if key:
        try:
            completed = yield CompleteOp(key, owner)
        except StoreUnavailableError as exc:
            # Handlers ran: answering an error would run them again on retry.
            logger.error("could not mark %s done: %s", key, exc)
            yield ReportOp(exc, event)
        else:
            if completed is False:
                # The lease ran out while handlers ran and another delivery took the
                # key over: the handlers may run twice.
                logger.warning("lease on %s expired before its handlers finished", key)
    return handled(event, key)


def handled(event: WebhookEvent, key: str = "") -> WebhookResponse:
    """The 200 for a delivery whose handlers all succeeded."""
    logger.debug("handled webhook %s (%s)", event.id or key, event.event)
    return answers.OK.with_event(event)


def rejected(rejection: Rejected) -> Flow:
    """A delivery refused at admission: report why (if it was authentic), then answer."""
    if rejection.error is not None:
        yield ReportOp(rejection.error, rejection.body)
    return rejection.response


def offloaded(admitted: Admitted) -> Flow:
    """Publish to the task queue: 200 queued once accepted, else 503 so Commet retries."""
    event = admitted.event
    try:
        yield PublishOp(admitted)
    except Exception as exc:
        logger.error("could not queue %s %s: %s", event.event, event.id or "", type(exc).__name__)
        yield ReportOp(exc, event)
        return answers.OFFLOAD_UNAVAILABLE.with_event(event)
    return answers.QUEUED.with_event(event)


def _release(key: str, owner: str, error: str = "") -> Generator[Op, Any, None]:
    try:
        yield ReleaseOp(key, owner, error=error)
    except StoreUnavailableError as exc:
        logger.error("could not release %s; its lease will expire: %s", key, exc)


def _describe(admitted: Admitted, errors: HandlerErrors) -> str:
    """``Type: message`` of each failure, bounded, for the record of a failed delivery."""
    parts = [f"{type(e).__name__}: {e}"[:300] for _, e in errors]
    if admitted.schema_error is not None:
        parts.append(f"EventSchemaError: {admitted.schema_error}"[:300])
    return "; ".join(parts)[:1000]


def _failure_answer(admitted: Admitted, errors: HandlerErrors, *, retry: bool) -> WebhookResponse:
    parts = []
    if admitted.schema_error is not None:
        where = f" at {admitted.schema_error.field}" if admitted.schema_error.field else ""
        parts.append(
            f"{admitted.event.event} did not fit its class{where}; delivered untyped to on_payload"
        )
    if errors:
        names = sorted({type(e).__name__ for _, e in errors})
        parts.append(f"{len(errors)} handler(s) failed: {', '.join(names)}")
    outcome = Outcome.HANDLER_ERROR if errors else Outcome.ACCEPTED_RAW
    return answers.failure("; ".join(parts), retry=retry, outcome=outcome, event=admitted.event)
