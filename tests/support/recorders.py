"""What webhook handlers received."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from commet_webhooks import WebhookEvent, Webhooks
from commet_webhooks.events import EVENT_TYPES

__all__ = ["Recorder", "Seen"]


class Seen:
    """Events in the order they arrived, also looked up by event id (thread-safe).

    ``event_id in seen`` and ``seen[event_id]`` (the last event with that id) find one;
    iterating and ``len`` go over the events themselves.
    """

    def __init__(self) -> None:
        self._events: list[WebhookEvent] = []
        self._lock = threading.Lock()

    def append(self, event: WebhookEvent) -> None:
        with self._lock:
            self._events.append(event)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return any(str(e.id) == event_id for e in self._events)

    def __getitem__(self, event_id: str) -> WebhookEvent:
        with self._lock:
            for event in reversed(self._events):
                if str(event.id) == event_id:
                    return event
        raise KeyError(event_id)

    def __iter__(self) -> Iterator[WebhookEvent]:
        with self._lock:
            return iter(list(self._events))

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __bool__(self) -> bool:
        return len(self) > 0


class Recorder:
    """Handlers that record: one for every modelled event type, and the catch-all.

    ``fail=True`` (or ``reset(fail=True)``) makes every handler raise after recording.
    """

    def __init__(self, *, fail: bool = False) -> None:
        self.specific = Seen()
        self.catch_all = Seen()
        self.fail = fail

    def reset(self, *, fail: bool = False) -> None:
        self.specific.clear()
        self.catch_all.clear()
        self.fail = fail

    @property
    def ran(self) -> bool:
        """Whether any handler ran since the last reset."""
        return bool(self.specific or self.catch_all)

    def attach(self, webhooks: Webhooks) -> Webhooks:
        """Register an async handler per modelled type and a sync catch-all on ``webhooks``."""
        for name in EVENT_TYPES:
            webhooks.on(name)(self.record_specific)
        webhooks.on_payload(self.record_any)
        return webhooks

    async def record_specific(self, event: WebhookEvent) -> None:
        self.specific.append(event)
        if self.fail:
            raise RuntimeError("handler failed on purpose")

    def record_any(self, event: WebhookEvent) -> None:
        self.catch_all.append(event)
        if self.fail:
            raise RuntimeError("catch-all failed on purpose")
