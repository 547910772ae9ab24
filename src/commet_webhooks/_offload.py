"""Handing verified deliveries to a task queue: the small protocol every engine implements.

With ``Webhooks(offload=...)`` the receiver verifies and parses a delivery, publishes
an :class:`OffloadedDelivery` (the raw body and its signature, never a re-encoded
copy) and answers ``200 {"received": true, "queued": true}`` once the broker has
accepted it — or 503 when it has not, so Commet retries. A worker then calls
``webhooks.handle_offloaded(delivery)`` (or ``await webhooks.ahandle_offloaded``),
which verifies the signature again and runs the handlers through the same pipeline,
with the idempotency store, exactly as inline mode would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._wire import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER

__all__ = ["Offload", "OffloadedDelivery"]


@dataclass(frozen=True)
class OffloadedDelivery:
    """What travels through the broker: enough to verify and process, nothing more."""

    body: bytes
    signature: str
    event_id: str | None
    event_type: str
    received_at: str
    """ISO 8601 time the receiver accepted it."""
    context: dict[str, str] = field(default_factory=dict)
    """Tracing context (W3C ``traceparent``/``tracestate``) and similar metadata."""

    def headers(self) -> dict[str, str]:
        """The headers a worker hands back to the pipeline (with the context, so an
        observer continues the receiver's trace the way it would from HTTP headers)."""
        headers = {**self.context, SIGNATURE_HEADER: self.signature}
        headers[EVENT_TYPE_HEADER] = self.event_type
        if self.event_id:
            headers[EVENT_ID_HEADER] = self.event_id
        return headers

    def to_message(self) -> dict[str, Any]:
        """A JSON-safe form for brokers (the body as latin-1 text keeps every byte)."""
        return {
            "body": self.body.decode("latin-1"),
            "signature": self.signature,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "received_at": self.received_at,
            "context": dict(self.context),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> OffloadedDelivery:
        """The inverse of :meth:`to_message`; raises ``ValueError`` on a malformed message."""
        try:
            return cls(
                body=str(message["body"]).encode("latin-1"),
                signature=str(message["signature"]),
                event_id=None if message.get("event_id") is None else str(message["event_id"]),
                event_type=str(message["event_type"]),
                received_at=str(message["received_at"]),
                context={str(k): str(v) for k, v in dict(message.get("context") or {}).items()},
            )
        except (KeyError, TypeError, UnicodeEncodeError, AttributeError) as exc:
            raise ValueError(f"not an offloaded Commet delivery: {exc!r}") from None


@runtime_checkable
class Offload(Protocol):
    """Publish a delivery durably; return only once the broker has accepted it.

    Raise any exception when it was not accepted: the receiver answers 503 and
    Commet retries. ``publish`` is used by ``handle_sync``, ``apublish`` by ``handle``.
    """

    def publish(self, delivery: OffloadedDelivery) -> None: ...

    async def apublish(self, delivery: OffloadedDelivery) -> None: ...
