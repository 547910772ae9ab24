"""Build the sample event ``trigger`` sends: registry names, ``--set`` overrides."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

import msgspec

from .._wire import ENVELOPE_KEYS, camel_case
from ..events import EVENT_TYPES
from ..testing import sample_event

__all__ = [
    "OverrideError",
    "build_event",
    "complete_event_type",
    "parse_assignment",
    "suggest",
    "unknown_fields",
]


class OverrideError(ValueError):
    """A ``--set`` assignment that cannot be applied."""


def complete_event_type(incomplete: str) -> list[str]:
    """Shell completion for the event argument: the modelled event types."""
    return [name for name in EVENT_TYPES if name.startswith(incomplete)]


def suggest(event_type: str) -> str | None:
    """The modelled event type closest to a misspelled ``event_type``, if any."""
    matches = difflib.get_close_matches(event_type, list(EVENT_TYPES), n=1, cutoff=0.6)
    return matches[0] if matches else None


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``field.sub=value`` -> (``["field", "sub"]``, value).

    The value is read as JSON when it parses (``5000``, ``true``, ``null``,
    ``{"id": "x"}``) and kept as a string otherwise.
    """
    field, sep, raw = text.partition("=")
    path = field.strip().split(".")
    if not sep or not all(path):
        raise OverrideError(f"--set expects field=value (e.g. invoice_total=5000), got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return path, value


def unknown_fields(event_type: str, paths: Iterable[list[str]]) -> list[str]:
    """The top-level data fields in ``paths`` that ``event_type``'s data class lacks.

    Envelope keys and ``data`` itself are not data fields and never reported; an
    event type outside the registry has no known fields, so nothing is reported.
    """
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        return []
    known = {field.encode_name for field in msgspec.structs.fields(spec.data_class)}
    unknown: list[str] = []
    for path in paths:
        top = path[1] if path[0] == "data" and len(path) > 1 else path[0]
        if len(path) == 1 and (top in ENVELOPE_KEYS or top == "data"):
            continue
        if camel_case(top) not in known and top not in unknown:
            unknown.append(top)
    return unknown


def build_event(event_type: str, assignments: Iterable[tuple[list[str], Any]]) -> dict[str, Any]:
    """A realistic envelope for ``event_type`` with the assignments applied in order.

    A one-part field goes through :func:`~commet_webhooks.testing.sample_event`, so
    envelope keys (``id``, ``timestamp``, ``mode``, ...) set the envelope, ``data``
    replaces the data object and anything else sets a data field. A dotted field
    (``previous_plan.name``) sets a nested data key; a leading ``data.`` is optional.
    Names may be snake_case or camelCase.
    """
    flat: dict[str, Any] = {}
    nested: list[tuple[list[str], Any]] = []
    for path, value in assignments:
        if len(path) == 1:
            if path[0] == "data" and not isinstance(value, dict):
                raise OverrideError("--set data=... needs a JSON object")
            flat[path[0]] = value
        else:
            nested.append((path[1:] if path[0] == "data" else path, value))
    envelope = sample_event(event_type, **flat)
    for path, value in nested:
        _set_nested(envelope["data"], path, value)
    return envelope


def _set_nested(target: dict[str, Any], path: list[str], value: Any) -> None:
    *parents, last = path
    for depth, name in enumerate(parents):
        child = target.setdefault(camel_case(name), {})
        if not isinstance(child, dict):
            shown = ".".join(path[: depth + 1])
            raise OverrideError(f"cannot set {'.'.join(path)}: {shown} is not an object")
        target = child
    target[camel_case(last)] = value
