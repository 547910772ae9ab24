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
from dataclasses import dataclass
from typing import Any, Union

from . import _responses as answers
from ._admission import Admitted
from ._envelope import WebhookEvent
from ._responses import Outcome, WebhookResponse
from ._router import Registered
from .errors import StoreUnavailableError
from .stores._base import Claim

__all__ = ["ClaimOp", "CompleteOp", "Flow", "Op", "ReleaseOp", "ReportOp", "RunOp", "process"]

logger = logging.getLogger("commet_webhooks")


@dataclass(frozen=True, slots=True)
class ClaimOp:
    key: str
    owner: str


@dataclass(frozen=True, slots=True)
class CompleteOp:
    key: str
    owner: str


@dataclass(frozen=True, slots=True)
class ReleaseOp:
    key: str
    owner: str


@dataclass(frozen=True, slots=True)
class RunOp:
    """Run ``handlers`` on ``event``; the result is ``[(handler, exception), ...]``."""

    event: WebhookEvent
    handlers: tuple[Registered, ...]
    key: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class ReportOp:
    error: BaseException
    subject: WebhookEvent | bytes


Op = Union[ClaimOp, CompleteOp, ReleaseOp, RunOp, ReportOp]  # noqa: UP007
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
            claim = yield ClaimOp(key, owner)
        except StoreUnavailableError as exc:
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
        except BaseException:
            # Cancelled or interrupted mid-handler: free the claim for the retry.
            if key:
                yield from _release(key, owner)
            raise
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
            yield from _release(key, owner)
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
    logger.debug("handled webhook %s (%s)", event.id or key, event.event)
    return answers.OK.with_event(event)


def _release(key: str, owner: str) -> Generator[Op, Any, None]:
    try:
        yield ReleaseOp(key, owner)
    except StoreUnavailableError as exc:
        logger.error("could not release %s; its lease will expire: %s", key, exc)


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
