"""The hooks instrumentation plugs into: one :class:`Observer` per ``Webhooks``.

The drivers call these methods only when an observer is installed, so a receiver
without instrumentation pays nothing. Implementations (OpenTelemetry, Prometheus,
structured logs) subclass :class:`Observer` and override what they need; every
method must be cheap and must not raise (an observer that raises is logged and
ignored by the caller, never allowed to change an answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._admission import Admitted, Rejected
    from ._responses import WebhookResponse

__all__ = ["COMMET_TIMEOUT_SECONDS", "Observer"]

COMMET_TIMEOUT_SECONDS = 10.0
"""How long Commet waits for an answer before it counts the attempt as failed."""


_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()


class Observer:
    """No-op hooks for one delivery's life; override what you measure.

    ``delivery_started`` returns a token (anything: a span, a start time) that the
    other calls for the same delivery receive back.
    """

    def delivery_started(self, headers: Mapping[str, str] | Any) -> Any:
        """A request reached ``handle``/``handle_sync``, or a worker picked up an offloaded one
        (then ``headers`` also carry the delivery's ``context``, e.g. ``traceparent``)."""
        return None

    def admitted(self, token: Any, admission: Admitted | Rejected, seconds: float) -> None:
        """Size, signature and decode checks are done; ``seconds`` is what they took."""

    def handler(self, token: Any, name: str, event_type: str) -> AbstractContextManager[None]:
        """Around one handler call (an exception it raises passes through)."""
        return _NOTHING

    def store_call(self, token: Any, operation: str) -> AbstractContextManager[None]:
        """Around one idempotency-store call: ``claim``, ``complete``, ``release``."""
        return _NOTHING

    def delivery_finished(self, token: Any, response: WebhookResponse, seconds: float) -> None:
        """The answer is decided; ``seconds`` is the whole delivery."""
