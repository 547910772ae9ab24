"""The Commet envelope, one typed class per event type, and the registry of event types.

The classes are generated from Commet's published webhook contract
(``scripts/generate_events.py`` writes :mod:`commet_webhooks._event_types`); this
module gathers them into the registry (:data:`EVENT_TYPES`), the single source of
truth for the dispatcher's ``on_*`` keywords, :class:`EventType`, the sample payloads
of :mod:`commet_webhooks.testing`, the CLI and the emulator.

Decoding is one pass: the event classes form a msgspec tagged union keyed on the
envelope's ``event`` field, so the body goes straight to a typed event. Only a body
the union rejects takes a second, untyped pass: an event type we do not model becomes
an :class:`UnknownEvent`; a modelled type whose fields do not fit its class (the
platform drifted) raises :class:`~commet_webhooks.errors.EventSchemaError`, which
carries the untyped event so that nothing authentic is lost.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Union

import msgspec

from . import _event_types
from ._envelope import UnknownEvent, WebhookEvent
from ._event_types import *  # noqa: F403 - the generated classes are this module's API
from ._event_types import EVENT_CLASSES, EXAMPLES, EventType
from ._wire import validation_message
from .errors import EventSchemaError, PayloadError

__all__ = [
    "ACCESS_STATUSES",
    "EVENT_TYPES",
    "EventSpec",
    "UnknownEvent",
    "WebhookEvent",
    "decode_event",
    "handler_keyword",
]
__all__ += _event_types.__all__

#: Subscription statuses that grant access (SPEC's rule of thumb: active or trialing).
ACCESS_STATUSES: frozenset[str] = frozenset({"active", "trialing"})


def handler_keyword(event_type: str) -> str:
    """``payment.failed`` -> ``on_payment_failed``."""
    return "on_" + event_type.replace(".", "_")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EventSpec:
    """One modelled event type: its wire name, classes and published example."""

    event_type: EventType
    event_class: builtins.type[WebhookEvent]
    data_class: builtins.type[msgspec.Struct]

    @property
    def name(self) -> str:
        return self.event_type.value

    @property
    def family(self) -> str:
        """The part before the dot: ``payment_link`` for ``payment_link.created``."""
        return self.name.split(".", 1)[0]

    @property
    def handler_keyword(self) -> str:
        return self.event_type.handler_keyword

    @property
    def description(self) -> str:
        return (self.event_class.__doc__ or "").strip()

    @property
    def example(self) -> dict[str, Any]:
        """The contract's published example ``data`` (do not mutate; copy it)."""
        return EXAMPLES[self.name]


def _spec(event_class: type[WebhookEvent]) -> EventSpec:
    tag = event_class.__struct_config__.tag
    assert isinstance(tag, str)
    # ``event.event`` as a plain class attribute instead of the envelope's property: every
    # delivery reads it several times (routing, metrics, logs).
    type.__setattr__(event_class, "event", tag)
    data_type = next(f.type for f in msgspec.structs.fields(event_class) if f.name == "data")
    return EventSpec(event_type=EventType(tag), event_class=event_class, data_class=data_type)


#: Every modelled event type, by wire name, in the contract's order.
EVENT_TYPES: dict[str, EventSpec] = {spec.name: spec for spec in map(_spec, EVENT_CLASSES)}
assert set(EVENT_TYPES) == {t.value for t in EventType}, "registry and EventType disagree"

# One tagged union over the event classes: msgspec picks the class from "event".
_KnownEvent: Any = Union[EVENT_CLASSES]  # noqa: UP007 - built at run time from the registry
_known_decoder = msgspec.json.Decoder(_KnownEvent)
_unknown_decoder = msgspec.json.Decoder(UnknownEvent)

Body = bytes | bytearray | memoryview | str


def decode_event(body: Body) -> WebhookEvent:
    """Decode a raw body into a typed event, or raise :class:`PayloadError`.

    A modelled event type whose fields do not fit its class raises the subclass
    :class:`EventSchemaError`, whose ``event`` is the envelope decoded untyped.
    The body is kept (not decoded again) for the lazy ``raw`` attribute.
    """
    try:
        event: WebhookEvent = _known_decoder.decode(body)
    except msgspec.ValidationError as known_error:
        event = _decode_unknown(body, known_error)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise _undecodable(exc) from None
    _keep_body(event, body)
    return event


def _keep_body(event: WebhookEvent, body: Body) -> None:
    event.__dict__["_body"] = bytes(body) if not isinstance(body, (bytes, str)) else body


def _decode_unknown(body: Body, known_error: msgspec.ValidationError) -> WebhookEvent:
    """Second pass for bodies the typed union rejected: an unmodelled type, or drift."""
    try:
        event = _unknown_decoder.decode(body)
    except msgspec.ValidationError as exc:
        # Not even a valid envelope: report the clearer of the two errors.
        raise _payload_error(exc) from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise _undecodable(exc) from None
    if event.event in EVENT_TYPES:
        # An authentic-looking envelope of a modelled type whose data does not fit.
        message, field = validation_message(known_error)
        _keep_body(event, body)
        event.__dict__["_schema_error"] = message
        raise EventSchemaError(
            f"{event.event} does not fit its class: {message}", field=field, event=event
        ) from None
    return event


def _undecodable(exc: BaseException) -> PayloadError:
    if isinstance(exc, RecursionError):
        return PayloadError("JSON is nested too deeply")
    return PayloadError(f"body could not be decoded: {type(exc).__name__}")


def _payload_error(exc: msgspec.ValidationError) -> PayloadError:
    message, field = validation_message(exc)
    return PayloadError(f"invalid envelope: {message}", field=field)
