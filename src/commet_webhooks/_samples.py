"""Schema-valid sample payloads for every event type, from the contract's examples.

The one builder behind :mod:`commet_webhooks.testing`, the CLI's ``trigger`` and the
emulator: each starts from the published example of its type (generated into
:mod:`commet_webhooks._event_types`) and applies overrides, so every payload any of
them sends is the shape Commet sends.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ._wire import API_VERSION, ENVELOPE_KEYS, camel_case, iso_time, new_id
from .events import EVENT_TYPES

__all__ = ["sample_data", "sample_envelope", "wire_value"]


def wire_value(value: Any) -> Any:
    """A Python value as JSON from Commet carries it: datetimes as ISO strings, keys camelCase."""
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, Mapping):
        return {camel_case(str(k)): wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_value(v) for v in value]
    return value


def sample_data(event_type: str, /, **overrides: Any) -> dict[str, Any]:
    """The published example ``data`` of ``event_type``, with ``overrides`` applied.

    Override keys may be snake_case or camelCase; values may be datetimes or nested
    dicts. An event type this library does not model gets ``{}`` plus the overrides.
    """
    spec = EVENT_TYPES.get(str(event_type))
    data: dict[str, Any] = copy.deepcopy(spec.example) if spec is not None else {}
    data.update(wire_value(overrides))
    return data


def sample_envelope(
    event_type: str,
    data: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
    timestamp: datetime | str | None = None,
    organization_id: str = "org_demo",
    mode: str = "sandbox",
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    """A full envelope as Commet delivers it today (``id``, ``mode``, ``apiVersion``)."""
    moment = timestamp if timestamp is not None else datetime.now(timezone.utc)
    return {
        "id": event_id or new_id("whev"),
        "event": str(event_type),
        "timestamp": iso_time(moment) if isinstance(moment, datetime) else moment,
        "organizationId": organization_id,
        "mode": mode,
        "apiVersion": api_version,
        "data": dict(data) if data is not None else sample_data(event_type),
    }


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword overrides into envelope keys (wire spelling) and ``data`` fields."""
    envelope: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in ENVELOPE_KEYS and key != "event":
            envelope[ENVELOPE_KEYS[key]] = wire_value(value)
        else:
            data[key] = value
    return envelope, data
