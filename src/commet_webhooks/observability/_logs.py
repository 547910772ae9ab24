"""Structured logs: delivery fields on log records, and a JSON formatter (standard library only).

While a delivery is handled, :class:`DeliveryFields` (a filter on the
``commet_webhooks`` logger) adds what is known about it so far — ``event_id``,
``event_type``, the ``secret_*`` fields once it is verified, ``outcome`` once it is
answered — to every record that logger emits, as ``extra`` attributes.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone
from typing import IO, Any

__all__ = ["CURRENT", "DeliveryFields", "JsonFormatter", "install_filter", "log_json"]

CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "commet_webhooks_delivery", default=None
)
"""The delivery being handled in this context (thread or task): has ``log_fields()``."""


class DeliveryFields(logging.Filter):
    """Add the current delivery's known fields to a record (never overriding ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        delivery = CURRENT.get()
        if delivery is not None:
            attributes = record.__dict__
            for key, value in delivery.log_fields().items():
                if key not in attributes:
                    attributes[key] = value
        return True


_FILTER = DeliveryFields()


def install_filter() -> None:
    """Put the filter on the library's logger, once."""
    logger = logging.getLogger("commet_webhooks")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


# What every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ``extra`` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def log_json(level: int | str = logging.INFO, *, stream: IO[str] | None = None) -> logging.Handler:
    """Log JSON lines to ``stream`` (stderr) from the root logger at ``level``; returns the handler.

    >>> from commet_webhooks.observability import log_json; log_json()
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
