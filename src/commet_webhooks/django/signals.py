"""Django signals for Commet webhooks: one per modelled event type, plus a catch-all.

Receivers are called as ``receiver(sender=<event class>, event=<typed event>)``::

    from django.dispatch import receiver
    from commet_webhooks.django.signals import subscription_activated, webhook_received

    @receiver(subscription_activated)
    def grant_access(sender, event, **kwargs): ...

    @receiver(webhook_received)        # every verified event, modelled or not
    def log_event(sender, event, **kwargs): ...

The per-event signals are generated from the event registry and named after it
(``subscription_plan_changed``, ``payment_failed``, ...); :func:`signal_for` looks
one up by wire name. A receiver that raises fails the delivery like any handler.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from ..dispatch import Webhooks
from ..events import EVENT_TYPES, WebhookEvent

__all__ = ["SIGNALS", "connect", "signal_for", "webhook_received"]

webhook_received = Signal()
"""Sent for every verified event, including event types this library does not model."""

SIGNALS: dict[str, Signal] = {name: Signal() for name in EVENT_TYPES}
"""Wire name (``"payment.failed"``) -> its signal."""

_BY_ATTRIBUTE = {
    spec.handler_keyword.removeprefix("on_"): SIGNALS[name] for name, spec in EVENT_TYPES.items()
}


def signal_for(event_type: str) -> Signal | None:
    """The signal for a modelled event type, or None for any other type."""
    return SIGNALS.get(event_type)


def __getattr__(name: str) -> Signal:
    """``signals.payment_failed`` and friends."""
    try:
        return _BY_ATTRIBUTE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *_BY_ATTRIBUTE])


def connect(webhooks: Webhooks) -> None:
    """Make ``webhooks`` send the signals: each event type's own, and the catch-all."""
    for name, signal in SIGNALS.items():
        webhooks.on(name)(_sender(signal))
    webhooks.on_payload(_sender(webhook_received))


def _sender(signal: Signal) -> Any:
    def send_signal(event: WebhookEvent) -> None:
        signal.send(sender=type(event), event=event)

    return send_signal
