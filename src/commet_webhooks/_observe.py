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

__all__ = ["COMMET_TIMEOUT_SECONDS", "DeliveryRecord", "Observer"]

COMMET_TIMEOUT_SECONDS = 10.0
"""How long Commet waits for an answer before it counts the attempt as failed."""


_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()


class DeliveryRecord(list[tuple[str, str, float, bool]]):
    """A token the core writes to, for observers that would rather read than be called.

    Return an instance (of a subclass, usually) from :meth:`Observer.delivery_started`
    and, while its ``scoped`` is false, the core does not call the observer again
    until :meth:`Observer.delivery_finished`. Instead it:

    - sets ``admission`` and ``admission_seconds`` once the checks are done (in place
      of :meth:`Observer.admitted`);
    - times each handler call and each idempotency-store call itself and appends
      ``(kind, name, seconds, raised)`` to the record, in order: ``kind`` is
      ``"handler"`` (``name`` the handler's) or ``"store"`` (``name`` the operation:
      ``claim``, ``complete``, ``release``) (in place of :meth:`Observer.handler` and
      :meth:`Observer.store_call`).

    That saves the observer three calls or more per delivery, which is most of what
    instrumenting an otherwise empty delivery costs. Set ``scoped`` to true in
    ``delivery_started`` for a delivery that needs the scopes (one whose span records,
    say): the core then calls every hook as for any other token.
    """

    scoped = False
    admission: Admitted | Rejected | None = None
    admission_seconds: float | None = None


class Observer:
    """No-op hooks for one delivery's life; override what you measure.

    ``delivery_started`` returns a token (anything: a span, a start time) that the
    other calls for the same delivery receive back. A :class:`DeliveryRecord` token
    asks the core to record the delivery's steps on it instead of calling the hooks
    in between.
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
