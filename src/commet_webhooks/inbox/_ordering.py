"""The ordering guard (opt-in): an older event for a resource does not undo a newer one.

Per resource — the event's ``data.subscriptionId``, else ``data.customerId``, within
its organization — the inbox keeps the envelope timestamp of the newest event a
guarded handler has seen. An event whose timestamp is *older* than that mark is
stale: a handler wrapped by the guard is not called for it, and once the delivery
finishes its inbox row reads ``skipped`` (answered 200, never retried). The check
and the raise of the mark are one atomic statement, so it holds across processes
and machines.

Limits (see docs/inbox.md): events with the *same* timestamp are never stale to each
other; an event without a resource id is never stale; the mark is raised when a
guarded handler first sees an event, before it runs — a newer event whose handler
then fails is retried or replayed, and older ones stay skipped meanwhile; two events
of one resource handled *at the same moment* in two workers both pass the check and
may finish in either order. The guard cuts the common case (a retry of Friday's
event arriving after Monday's); the state API (``subscriptions.get``) stays the
source of truth for access decisions.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .._envelope import WebhookEvent
from ._store import InboxStore

__all__ = ["OrderingGuard", "is_stale", "resource_of"]

logger = logging.getLogger("commet_webhooks.inbox")

F = TypeVar("F", bound=Callable[..., Any])

_STALE = "_commet_stale"


def resource_of(event: WebhookEvent) -> str | None:
    """The resource an event is about, for ordering: ``org/sub:ID``, ``org/cus:ID`` or None."""
    data = event.raw.get("data")
    if not isinstance(data, dict):
        return None
    for field, kind in (("subscriptionId", "sub"), ("customerId", "cus")):
        value = data.get(field)
        if isinstance(value, str) and value:
            return f"{event.organization_id}/{kind}:{value}"
    return None


def is_stale(event: WebhookEvent) -> bool | None:
    """What the guard decided for ``event``: True (stale), False, or None (not checked yet).

    Set once a guarded handler (or :meth:`OrderingGuard.check`) saw the event, so
    unguarded handlers of the same event can read it too.
    """
    value = event.__dict__.get(_STALE)
    return None if value is None else bool(value)


def _key(event: WebhookEvent) -> str:
    if event.id:
        return event.id
    body: bytes | None = event.__dict__.get("_body")
    return hashlib.sha256(body).hexdigest() if body is not None else ""


class OrderingGuard:
    """Wrap handlers so they skip events older than one already seen for their resource.

    >>> guard = OrderingGuard(inbox)
    >>> @webhooks.on("subscription.updated")
    ... @guard
    ... def sync_plan(event): ...

    ``inbox`` must be the inbox ``Webhooks`` records into (its row is marked skipped).
    """

    def __init__(self, inbox: InboxStore) -> None:
        if not isinstance(inbox, InboxStore):
            raise TypeError("OrderingGuard needs an inbox (SQLiteInbox or PostgresInbox)")
        self.inbox = inbox

    def __call__(self, handler: F) -> F:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def guarded_async(event: Any, *args: Any, **kwargs: Any) -> Any:
                if await self.acheck(event):
                    return None
                return await handler(event, *args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(handler)
        def guarded(event: Any, *args: Any, **kwargs: Any) -> Any:
            if self.check(event):
                return None
            return handler(event, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    def check(self, event: WebhookEvent) -> bool:
        """Whether ``event`` is stale; raises its resource's mark when it is the newest.

        Marks its inbox row so the delivery ends ``skipped``. Raises
        ``StoreUnavailableError`` when the inbox is down (the handler then fails and
        the delivery is retried).
        """
        known = is_stale(event)
        if known is not None:
            return known
        resource = resource_of(event)
        stale = False
        if resource is not None:
            key = _key(event)
            newest = self.inbox.observe(resource, event.timestamp, key)
            stale = newest > event.timestamp
            if stale and key:
                self.inbox.mark_stale(key)
        return self._decided(event, stale, resource)

    async def acheck(self, event: WebhookEvent) -> bool:
        """:meth:`check` for async handlers."""
        known = is_stale(event)
        if known is not None:
            return known
        resource = resource_of(event)
        stale = False
        if resource is not None:
            key = _key(event)
            newest = await self.inbox.aobserve(resource, event.timestamp, key)
            stale = newest > event.timestamp
            if stale and key:
                await self.inbox.amark_stale(key)
        return self._decided(event, stale, resource)

    def is_stale(self, event: WebhookEvent) -> bool:
        """Read-only: whether a newer event for ``event``'s resource was already seen."""
        resource = resource_of(event)
        if resource is None:
            return False
        newest = self.inbox.newest(resource)
        return newest is not None and newest > event.timestamp

    @staticmethod
    def _decided(event: WebhookEvent, stale: bool, resource: str | None) -> bool:
        event.__dict__[_STALE] = stale
        if stale:
            logger.info(
                "skipped stale %s %s: a newer event for %s was already seen",
                event.event,
                event.id or "",
                resource,
            )
        return stale
