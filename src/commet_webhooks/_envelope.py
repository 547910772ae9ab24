"""The Commet envelope: the base of every typed event, and the untyped fallback."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

__all__ = ["UnknownEvent", "WebhookEvent"]


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

    @property
    def schema_error(self) -> str | None:
        """Why a known event type did not fit its class, for an event delivered untyped.

        ``None`` for every typed event. See "Contract drift" in ``docs/events.md``.
        """
        error: str | None = self.__dict__.get("_schema_error")
        return error


class UnknownEvent(WebhookEvent, tag=False):
    """An event type this library does not model (or one that did not fit its class).

    ``data`` is the raw dict.
    """

    event: str
    data: dict[str, Any]
