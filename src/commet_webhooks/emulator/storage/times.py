"""Wall-clock times as the wire writes them."""

from __future__ import annotations

from datetime import datetime, timezone

from ..._wire import iso_time

__all__ = ["from_iso", "now_iso"]


def now_iso() -> str:
    """The current real UTC time in the ISO 8601 form used on the wire."""
    return iso_time(datetime.now(timezone.utc))


def from_iso(value: str) -> datetime:
    """The aware ``datetime`` of a wire time (``...Z``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
