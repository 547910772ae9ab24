"""The Commet envelope, one typed class per event, and the registry of event types.

The registry (:data:`EVENT_TYPES`) is the single source of truth: the dispatcher's
``on_*`` keywords, :class:`EventType`, the sample payloads of
:mod:`commet_webhooks.testing` and the emulator all derive from it.

Decoding is one pass: the eight event classes form a msgspec tagged union keyed on
the envelope's ``event`` field, so the body goes straight to a typed event. Only an
event type we do not model takes a second, untyped pass (into :class:`UnknownEvent`).
"""

from __future__ import annotations

import builtins
import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

import msgspec

from ._wire import TimedWireStruct, WireStruct
from .errors import PayloadError

__all__ = [
    "ACCESS_STATUSES",
    "EVENT_TYPES",
    "EventSpec",
    "EventType",
    "InvoiceCreated",
    "InvoiceCreatedData",
    "PaymentFailed",
    "PaymentFailedData",
    "PaymentReceived",
    "PaymentReceivedData",
    "PlanRef",
    "SubscriptionActivated",
    "SubscriptionActivatedData",
    "SubscriptionCanceled",
    "SubscriptionCanceledData",
    "SubscriptionCreated",
    "SubscriptionCreatedData",
    "SubscriptionPlanChanged",
    "SubscriptionPlanChangedData",
    "SubscriptionUpdated",
    "SubscriptionUpdatedData",
    "UnknownEvent",
    "WebhookEvent",
    "decode_event",
]


class EventType(str, enum.Enum):
    """The eight modelled event types: ``EventType.PAYMENT_FAILED == "payment.failed"``."""

    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_ACTIVATED = "subscription.activated"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    SUBSCRIPTION_UPDATED = "subscription.updated"
    SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
    PAYMENT_RECEIVED = "payment.received"
    PAYMENT_FAILED = "payment.failed"
    INVOICE_CREATED = "invoice.created"

    def __str__(self) -> str:
        return self.value

    @property
    def handler_keyword(self) -> str:
        """The ``Webhooks`` keyword for this event: ``on_payment_failed``."""
        return handler_keyword(self.value)


#: Subscription statuses that grant access (SPEC's rule of thumb: active or trialing).
ACCESS_STATUSES: frozenset[str] = frozenset({"active", "trialing"})


def handler_keyword(event_type: str) -> str:
    """``payment.failed`` -> ``on_payment_failed``."""
    return "on_" + event_type.replace(".", "_")


# --------------------------------------------------------------------------- data


class PlanRef(msgspec.Struct, kw_only=True):
    """A plan as referenced from ``subscription.plan_changed``."""

    id: str
    name: str


class SubscriptionCreatedData(TimedWireStruct):
    _time_fields = ("start_date",)
    subscription_id: str
    customer_id: str
    plan_id: str
    plan_name: str
    status: str
    public_id: str | None = None
    external_id: str | None = None
    start_date: datetime | None = None
    name: str | None = None


class SubscriptionActivatedData(TimedWireStruct):
    _time_fields = ("current_period_start", "current_period_end")
    subscription_id: str
    customer_id: str
    status: str
    invoice_id: str
    invoice_number: str
    invoice_total: int
    invoice_currency: str
    public_id: str | None = None
    external_id: str | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    name: str | None = None


class SubscriptionCanceledData(TimedWireStruct):
    _time_fields = ("canceled_at", "end_date")
    subscription_id: str
    customer_id: str
    status: str
    external_id: str | None = None
    canceled_at: datetime | None = None
    cancel_reason: str | None = None
    end_date: datetime | None = None


class SubscriptionUpdatedData(SubscriptionCanceledData):
    pass


class SubscriptionPlanChangedData(WireStruct):
    subscription_id: str
    customer_id: str
    previous_plan: PlanRef
    current_plan: PlanRef
    external_id: str | None = None
    billing_interval: str | None = None
    credit: int | None = None
    charge: int | None = None
    total_charged: int | None = None


class PaymentReceivedData(TimedWireStruct):
    _time_fields = ("paid_at",)
    invoice_id: str
    invoice_number: str
    invoice_total: int
    customer_id: str
    subscription_id: str
    payment_transaction_id: str
    gross_amount: int
    currency: str
    org_net_amount: int
    customer_email: str | None = None
    paid_at: datetime | None = None


class PaymentFailedData(WireStruct):
    customer_id: str
    subscription_id: str
    invoice_id: str | None = None
    invoice_number: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class InvoiceCreatedData(TimedWireStruct):
    _time_fields = ("period_start", "period_end", "issue_date", "due_date")
    invoice_id: str
    invoice_number: str
    invoice_status: str
    currency: str
    subtotal: int
    total: int
    customer_id: str
    subscription_id: str
    period_start: datetime | None = None
    period_end: datetime | None = None
    issue_date: datetime | None = None
    due_date: datetime | None = None


# --------------------------------------------------------------------------- events


class WebhookEvent(msgspec.Struct, tag_field="event", rename="camel", kw_only=True, dict=True):
    """A verified Commet webhook: the envelope with typed ``data``.

    ``raw`` is the envelope exactly as received; it is decoded from the body only
    when first read, so the hot path pays for one decode.
    """

    timestamp: datetime
    organization_id: str
    id: str | None = None
    mode: str | None = None
    api_version: str | None = None
    data: Any

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            self.timestamp = self.timestamp.replace(tzinfo=timezone.utc)

    @property
    def event(self) -> str:
        """The event type, e.g. ``"payment.failed"``."""
        tag = self.__struct_config__.tag
        return tag if isinstance(tag, str) else ""

    @property
    def raw(self) -> dict[str, Any]:
        """The envelope as received (decoded lazily from the original body)."""
        cached: dict[str, Any] | None = self.__dict__.get("_raw")
        if cached is None:
            body: bytes | None = self.__dict__.get("_body")
            # An event built in code (not received) has no body: its encoding is the envelope.
            cached = msgspec.json.decode(body) if body is not None else msgspec.to_builtins(self)
            self.__dict__["_raw"] = cached
        return cached


class SubscriptionCreated(WebhookEvent, tag="subscription.created"):
    """A subscription was created, before payment. Do not grant access yet."""

    data: SubscriptionCreatedData


class SubscriptionActivated(WebhookEvent, tag="subscription.activated"):
    """The first payment succeeded and the subscription is active: grant access."""

    data: SubscriptionActivatedData


class SubscriptionCanceled(WebhookEvent, tag="subscription.canceled"):
    """The subscription was canceled."""

    data: SubscriptionCanceledData


class SubscriptionUpdated(WebhookEvent, tag="subscription.updated"):
    """Subscription details changed (status, scheduled cancellation, metadata)."""

    data: SubscriptionUpdatedData


class SubscriptionPlanChanged(WebhookEvent, tag="subscription.plan_changed"):
    """An upgrade, downgrade or billing-interval change."""

    data: SubscriptionPlanChangedData


class PaymentReceived(WebhookEvent, tag="payment.received"):
    """A renewal payment succeeded (the first payment fires ``subscription.activated``)."""

    data: PaymentReceivedData


class PaymentFailed(WebhookEvent, tag="payment.failed"):
    """A renewal charge failed."""

    data: PaymentFailedData


class InvoiceCreated(WebhookEvent, tag="invoice.created"):
    """A new invoice, usually at the start of a period."""

    data: InvoiceCreatedData


class UnknownEvent(WebhookEvent, tag=False):
    """Any event type this library does not model; ``data`` is the raw dict."""

    event: str
    data: dict[str, Any]


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class EventSpec:
    """One modelled event type."""

    event_type: EventType
    event_class: builtins.type[WebhookEvent]
    data_class: builtins.type[msgspec.Struct]

    @property
    def name(self) -> str:
        return self.event_type.value

    @property
    def handler_keyword(self) -> str:
        return self.event_type.handler_keyword

    @property
    def description(self) -> str:
        return (self.event_class.__doc__ or "").strip()


def _spec(event_class: type[WebhookEvent]) -> EventSpec:
    tag = event_class.__struct_config__.tag
    assert isinstance(tag, str)
    data_class = msgspec.structs.fields(event_class)
    data_type = next(f.type for f in data_class if f.name == "data")
    return EventSpec(event_type=EventType(tag), event_class=event_class, data_class=data_type)


_EVENT_CLASSES: tuple[builtins.type[WebhookEvent], ...] = (
    SubscriptionCreated,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionUpdated,
    SubscriptionPlanChanged,
    PaymentReceived,
    PaymentFailed,
    InvoiceCreated,
)

#: Every modelled event type, by wire name, in SPEC order.
EVENT_TYPES: dict[str, EventSpec] = {spec.name: spec for spec in map(_spec, _EVENT_CLASSES)}
assert set(EVENT_TYPES) == {t.value for t in EventType}, "registry and EventType disagree"

# One tagged union over the event classes: msgspec picks the class from "event".
_KnownEvent: Any = Union[_EVENT_CLASSES]  # noqa: UP007 - built at run time from the registry
_known_decoder = msgspec.json.Decoder(_KnownEvent)
_unknown_decoder = msgspec.json.Decoder(UnknownEvent)


def decode_event(body: bytes | bytearray | memoryview | str) -> WebhookEvent:
    """Decode a raw body into a typed event, or raise :class:`PayloadError`.

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
    event.__dict__["_body"] = bytes(body) if not isinstance(body, (bytes, str)) else body
    return event


def _decode_unknown(
    body: bytes | bytearray | memoryview | str, known_error: Exception
) -> WebhookEvent:
    """Second pass for bodies the typed union rejected: an unmodelled type, or invalid."""
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
        # A modelled event whose fields are wrong: surface the typed error.
        raise _payload_error(known_error) from None
    return event


def _undecodable(exc: BaseException) -> PayloadError:
    if isinstance(exc, RecursionError):
        return PayloadError("JSON is nested too deeply")
    return PayloadError(f"body could not be decoded: {type(exc).__name__}")


def _payload_error(exc: Exception) -> PayloadError:
    message = str(exc)
    field = None
    marker = " - at `"
    if marker in message:
        field = message.rsplit(marker, 1)[1].rstrip("`")
    return PayloadError(f"invalid envelope: {message}", field=field)
