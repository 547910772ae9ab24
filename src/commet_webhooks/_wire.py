"""Base structs for JSON from Commet: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import timezone
from typing import ClassVar

import msgspec

__all__ = ["TimedWireStruct", "WireStruct"]


class WireStruct(msgspec.Struct, rename="camel", kw_only=True):
    """Wire names are camelCase, attributes snake_case; unknown keys are ignored."""


class TimedWireStruct(WireStruct):
    """A struct with times: the fields named in ``_time_fields`` are made timezone-aware.

    Commet sends UTC times with a ``Z``; a naive time is read as UTC rather than
    rejected, so every ``datetime`` a handler sees is aware.
    """

    _time_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._time_fields:
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=timezone.utc))
