"""Facts of the wire shared by the library, its test helpers, the CLI and the emulator.

Base structs for JSON from Commet (camelCase on the wire, snake_case in Python), the
header names, the time format, name conversion and header lookup. Nothing here does
I/O; every other module takes these from here rather than spelling them again.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgspec

__all__ = [
    "API_VERSION",
    "ENVELOPE_KEYS",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TimedWireStruct",
    "WireStruct",
    "camel_case",
    "get_header",
    "iso_time",
    "new_id",
    "validation_message",
]

#: The platform API version this release speaks (webhook contract and state API).
API_VERSION = "2026-08-27"

SIGNATURE_HEADER = "X-Commet-Signature"
EVENT_TYPE_HEADER = "X-Commet-Event"
TIMESTAMP_HEADER = "X-Commet-Timestamp"
EVENT_ID_HEADER = "X-Commet-Event-Id"

#: Envelope keys by their Python and wire spellings -> the wire spelling.
ENVELOPE_KEYS: Mapping[str, str] = {
    "id": "id",
    "event": "event",
    "timestamp": "timestamp",
    "organization_id": "organizationId",
    "organizationId": "organizationId",
    "mode": "mode",
    "api_version": "apiVersion",
    "apiVersion": "apiVersion",
}


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


def iso_time(moment: datetime) -> str:
    """The ISO 8601 form Commet uses: UTC, milliseconds, ``Z`` suffix."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")


def camel_case(name: str) -> str:
    """`previous_plan` -> `previousPlan`: the wire spelling of a snake_case field name."""
    return _CAMEL_BOUNDARY.sub(lambda m: m.group(1).upper(), name)


def new_id(prefix: str) -> str:
    """A fresh id in Commet's style: ``whev_3f2a…``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def validation_message(exc: msgspec.ValidationError) -> tuple[str, str | None]:
    """msgspec's message and the JSON path it names (``$.data.total``), if any."""
    message = str(exc)
    marker = " - at `"
    if marker in message:
        return message, message.rsplit(marker, 1)[1].rstrip("`")
    return message, None


def get_header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """Case-insensitive header lookup that tolerates plain dicts and bytes values.

    ``name`` is given in lower case. A header given more than once (a list of
    values) reads as absent: one delivery carries one value of each header.
    """
    try:
        value = headers.get(name)
        if value is None:
            value = headers.get(_canonical(name))
        if value is None:
            for key in headers:
                k = key.decode("latin-1") if isinstance(key, bytes) else str(key)
                if k.lower() == name:
                    value = headers[key]
                    break
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if value is None or not isinstance(value, str):
        return None
    return value


@functools.lru_cache(maxsize=32)
def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))
