"""Traces, metrics and structured logs for a ``Webhooks`` receiver, with one call.

>>> from commet_webhooks.observability import instrument
>>> instrument(webhooks)                     # OpenTelemetry + Prometheus + logs, as installed

- **Tracing** (extra ``otel``): one span per delivery, a child of the current (HTTP
  framework) span, named and attributed after OpenTelemetry's messaging conventions
  for a processing span, with ``commet.*`` attributes; a child span per handler and
  per idempotency-store call; exceptions recorded. The trace context travels with
  deliveries handed to a task queue (``Webhooks(offload=...)``): wrap the worker's
  call in :func:`continue_trace`.
- **Metrics**: through OpenTelemetry metrics (extra ``otel``) and/or a
  ``prometheus_client`` registry (extra ``prometheus``), with the same names; see
  :data:`METRICS` and ``docs/observability.md``.
- **Logs**: one summary record per delivery on ``commet_webhooks.delivery``, and the
  delivery's fields (``event_id``, ``event_type``, ``outcome``, ``secret_*``) added to
  the library's other records while it is handled. :func:`log_json` turns on JSON lines.

Nothing here is imported by ``import commet_webhooks``, and this module imports
OpenTelemetry or ``prometheus_client`` only when :func:`instrument` enables them.
Bodies and secrets are never recorded: a secret is named by its position in the
configured list and a short SHA-256 fingerprint.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._admission import Admitted
from .._observe import DeliveryRecord, Observer
from .._optional import missing_extra
from .._responses import WebhookResponse
from ._logs import CURRENT, DeliveryFields, JsonFormatter, install_filter, log_json
from ._metrics import (
    METRICS,
    MetricSpec,
    event_label,
    otel_metrics,
    prometheus_metrics,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .._admission import Rejected
    from .._offload import OffloadedDelivery
    from ..dispatch import Webhooks

__all__ = [
    "METRICS",
    "DeliveryFields",
    "Instrumentation",
    "JsonFormatter",
    "MetricSpec",
    "continue_trace",
    "instrument",
    "log_json",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "uninstrument",
]

logger = logging.getLogger("commet_webhooks.observability")
delivery_logger = logging.getLogger("commet_webhooks.delivery")

MESSAGING_SYSTEM = "commet"

_FAILED_OUTCOMES = frozenset(
    {"handler_error", "store_unavailable", "offload_unavailable", "cancelled"}
)
_BASE_ATTRIBUTES = {
    "messaging.system": MESSAGING_SYSTEM,
    "messaging.operation.type": "process",
    "messaging.operation.name": "process",
}


class _Delivery(DeliveryRecord):
    """The token for one delivery: what the later hooks need.

    A :class:`DeliveryRecord`: unless its span records (``scoped``), the core sets the
    admission on it and appends each handler and store call's timing to it, without
    calling the hooks in between. No ``__init__``: the class attributes are the
    defaults, so a delivery that sets little costs little. The event's fields are read
    from the admission (or the answer) when they are needed, not copied at each step.
    """

    span: Any = None  # our span, when it records
    context_span: Any = None  # our span or the unsampled parent: the context to propagate
    parent: Any = None  # the framework's HTTP span, when it records and is enriched
    event: Any = None  # the event the answer is about, once answered
    # (position, fingerprint) of each configured secret: set per Instrumentation.
    secrets: tuple[tuple[str, str], ...] = ()
    outcome: str | None = None
    log_token: Any = None

    def current_event(self) -> Any:
        """The verified event this delivery is about, or None before verification."""
        if self.event is not None:
            return self.event
        admission = self.admission
        return admission.event if type(admission) is Admitted else None

    @property
    def secret(self) -> tuple[str, str] | None:
        """(position, fingerprint) of the secret that verified the body, once verified."""
        admission = self.admission
        if type(admission) is not Admitted:
            return None
        index = admission.secret_index
        return self.secrets[index] if 0 <= index < len(self.secrets) else None

    @property
    def event_type(self) -> str | None:
        event = self.current_event()
        return None if event is None else event.event

    @property
    def event_id(self) -> str | None:
        event = self.current_event()
        return None if event is None else event.id

    def log_fields(self) -> dict[str, Any]:
        """What is known so far, as log record attributes."""
        fields: dict[str, Any] = {}
        event = self.current_event()
        if event is not None:
            fields["event_type"] = event.event
            if event.id is not None:
                fields["event_id"] = event.id
        secret = self.secret
        if secret is not None:
            fields["secret_position"] = int(secret[0])
            fields["secret_fingerprint"] = secret[1]
        if self.outcome is not None:
            fields["outcome"] = self.outcome
        return fields


class Instrumentation(Observer):
    """Tracing, metrics and logs for one ``Webhooks``; install it with :func:`instrument`."""

    def __init__(
        self,
        *,
        fingerprints: tuple[str, ...] = (),
        store_backend: str | None = None,
        tracer_provider: TracerProvider | None = None,
        tracing: bool = False,
        meter_provider: MeterProvider | None = None,
        otel_metrics_enabled: bool = False,
        prometheus_registry: CollectorRegistry | None = None,
        logs: bool = True,
        log_level: int = logging.INFO,
        enrich_http_span: bool = True,
        follow_parent_sampling: bool = True,
    ) -> None:
        self._fingerprints = fingerprints
        # (position as a label, fingerprint) per secret, built once.
        self._secrets = tuple((str(i), fp) for i, fp in enumerate(fingerprints))
        self._follow_parent = follow_parent_sampling
        self._store_backend = store_backend
        self._log_level = log_level
        self._logs = logs
        self._enrich = enrich_http_span
        self._tracer: Any = None
        self._trace: Any = None
        self._roots_dropped = False
        if tracing:
            from opentelemetry import context, propagate, trace

            self._trace, self._context, self._propagate = trace, context, propagate
            self._tracer = trace.get_tracer(
                "commet_webhooks", __version__, tracer_provider=tracer_provider
            )
            self._consumer = trace.SpanKind.CONSUMER
            self._internal = trace.SpanKind.INTERNAL
            self._error = trace.StatusCode.ERROR
            self._status = trace.Status
            self._roots_dropped = _drops_roots(getattr(self._tracer, "sampler", None))
            self._invalid_span = trace.INVALID_SPAN
            self._otel_context, self._span_key = _span_lookup()
        # Each delivery's token knows this receiver's secrets (for its log fields).
        self._token: type[_Delivery] = type("_Delivery", (_Delivery,), {"secrets": self._secrets})
        sinks: list[Any] = []
        self.prometheus_registry = prometheus_registry
        if prometheus_registry is not None:
            sinks.append(prometheus_metrics(prometheus_registry))
        if otel_metrics_enabled:
            sinks.append(otel_metrics(meter_provider, __version__))
        self._sinks = tuple(sinks)
        self._measure = bool(sinks)
        if logs:
            install_filter()

    @property
    def tracing(self) -> bool:
        return self._tracer is not None

    @property
    def metrics(self) -> tuple[str, ...]:
        """Which metric exporters are on: ``prometheus``, ``otel``."""
        return tuple("prometheus" if hasattr(s, "registry") else "otel" for s in self._sinks)

    def __repr__(self) -> str:
        return (
            f"Instrumentation(tracing={self.tracing}, metrics={list(self.metrics)}, "
            f"logs={self._logs}, secrets={len(self._fingerprints)})"
        )

    # ------------------------------------------------------------ hooks

    def delivery_started(self, headers: Mapping[str, str] | Any) -> _Delivery:
        delivery = self._token()
        if self._tracer is not None:
            # Written out here, not in a helper: every delivery makes this decision, and
            # the usual answer (an unsampled or no parent) is to make no span at all.
            parent = self._otel_context.get().get(self._span_key)  # the current span
            if parent is None or parent is self._invalid_span:  # no span is current
                if not self._roots_dropped:  # unless the sampler drops every root
                    self._start_span(delivery, self._invalid_span)
            else:
                # A SpanContext is typed as the tuple (trace id, span id, remote, trace
                # flags, trace state, valid): one unpacking instead of two properties.
                _, _, _, flags, _, valid = parent.get_span_context()
                # Bit 0 of the trace flags is "sampled" (W3C Trace Context).
                if flags & 1:
                    self._start_span(delivery, parent)
                elif valid:
                    if self._follow_parent:
                        # The HTTP span was not sampled, so under the usual parent-based
                        # sampler ours would not be either: make none, keep its context.
                        delivery.context_span = parent
                    else:
                        self._start_span(delivery, parent)
                elif not self._roots_dropped:
                    self._start_span(delivery, parent)
        if self._logs:
            delivery.log_token = CURRENT.set(delivery)
        return delivery

    def _start_span(self, delivery: _Delivery, parent: Any) -> None:
        """Start this delivery's span, a child of the current one (``parent``)."""
        span = self._tracer.start_span(
            "process commet", kind=self._consumer, attributes=_BASE_ATTRIBUTES
        )
        delivery.context_span = span
        if span.is_recording():  # not sampled: no child spans, no attributes
            delivery.span = span
            delivery.scoped = True  # the core calls admitted() and the scopes
            if self._enrich and parent.is_recording():
                delivery.parent = parent

    def admitted(self, token: Any, admission: Admitted | Rejected, seconds: float) -> None:
        # Called only for a delivery whose span records (``scoped``); the core sets the
        # admission on the others itself.
        if type(token) is not self._token:  # delivery_started failed: nothing to add to
            return
        token.admission = admission
        token.admission_seconds = seconds
        if token.span is not None and type(admission) is Admitted:
            self._name_span(token, admission)

    def _name_span(self, delivery: _Delivery, admission: Admitted) -> None:
        """Name and attribute the recording span once the event is known."""
        span = delivery.span
        event = admission.event
        span.update_name(f"process {event_label(event.event)}")
        attributes = _event_attributes(event.event, event.id)
        span.set_attributes(attributes)
        span.set_attribute("commet.secret.position", admission.secret_index)
        secret = delivery.secret
        if secret is not None:
            span.set_attribute("commet.secret.fingerprint", secret[1])
        if delivery.parent is not None:
            delivery.parent.set_attributes(attributes)

    # Called only for a delivery whose span records (``scoped``): the core times the
    # others' calls itself. Plain context-manager objects: a generator-based one costs
    # twice as much per call.

    def handler(
        self, token: Any, name: str, event_type: str
    ) -> contextlib.AbstractContextManager[None]:
        attributes = {
            "commet.handler": name,
            "code.function.name": name,
            "commet.event.type": event_type,
        }
        return _Scope(self, token, "handler", name, attributes)

    def store_call(self, token: Any, operation: str) -> contextlib.AbstractContextManager[None]:
        attributes = {"commet.store.operation": operation}
        if self._store_backend is not None:
            attributes["commet.store.backend"] = self._store_backend
        return _Scope(self, token, "store", operation, attributes)

    def delivery_finished(self, token: Any, response: WebhookResponse, seconds: float) -> None:
        if type(token) is not self._token:  # delivery_started failed: nothing to finish
            return
        delivery = token
        try:
            # The enum's value attribute itself: its ``value`` property costs a call.
            outcome: str = response.outcome._value_
            status = response.status
            ok = 200 <= status < 300
            event = response.event
            admission = delivery.admission
            span = delivery.span
            secret = None
            if type(admission) is Admitted:
                if event is None:
                    event = admission.event
                # _Delivery.secret, written out: this is every delivery's path.
                index = admission.secret_index
                if index < len(self._secrets):
                    secret = self._secrets[index]
            elif event is not None and span is not None:  # rejected, yet parsed
                span.set_attributes(_event_attributes(event.event, event.id))
            if span is not None:
                self._end_span(delivery, span, outcome)
            if self._measure:
                event_type = None if event is None else event.event
                admission_seconds = delivery.admission_seconds
                calls = delivery or None  # read at once, never kept by the exporters
                for sink in self._sinks:
                    sink.record(
                        event_type, outcome, seconds, ok, admission_seconds, secret, calls
                    )
            if self._logs:
                level = self._log_level if ok else logging.WARNING
                if delivery_logger.isEnabledFor(level):
                    # Only the summary record needs them as fields: set them here.
                    delivery.event, delivery.outcome = event, outcome
                    self._log(delivery, level, status, outcome, seconds)
        finally:
            if delivery.log_token is not None:
                try:
                    CURRENT.reset(delivery.log_token)
                except (ValueError, RuntimeError):  # another context, or reset twice
                    CURRENT.set(None)

    def _end_span(self, delivery: _Delivery, span: Any, outcome: str) -> None:
        span.set_attribute("commet.outcome", outcome)
        if outcome in _FAILED_OUTCOMES:
            span.set_attribute("error.type", outcome)
            span.set_status(self._status(self._error, outcome))
        span.end()
        if delivery.parent is not None:
            delivery.parent.set_attribute("commet.outcome", outcome)

    def _log(
        self, delivery: _Delivery, level: int, status: int, outcome: str, seconds: float
    ) -> None:
        """The delivery's summary record on ``commet_webhooks.delivery``."""
        extra = delivery.log_fields()
        extra["status"] = status
        extra["duration_ms"] = round(seconds * 1000.0, 3)
        what = (delivery.event_type or "(unverified)", delivery.event_id or "")
        if outcome == "cancelled":  # nothing was answered
            message = "webhook %s %s cancelled after %.1f ms, before an answer: Commet counts "
            message += "the attempt as failed"
            args: tuple[Any, ...] = (*what, seconds * 1000.0)
        else:
            message = "webhook %s %s answered %d (%s) in %.1f ms"
            args = (*what, status, outcome, seconds * 1000.0)
        delivery_logger.log(level, message, *args, extra=extra)

    def inject_context(self, token: Any) -> dict[str, str]:
        """The W3C trace context of this delivery, for the task queue (``offload=``)."""
        delivery: _Delivery = token
        span = delivery.context_span
        if self._tracer is None or span is None:
            return {}
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier

    # ------------------------------------------------------------ helpers

    def _child_span(self, parent: Any, name: str, attributes: dict[str, Any]) -> tuple[Any, Any]:
        """Start a child span of ``parent`` and make it current; returns (span, detach token)."""
        context = self._trace.set_span_in_context(parent)
        span = self._tracer.start_span(
            name, context=context, kind=self._internal, attributes=attributes
        )
        return span, self._context.attach(self._trace.set_span_in_context(span))

    def _end_child(self, span: Any, attached: Any, exc: BaseException | None) -> None:
        try:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(self._status(self._error, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__qualname__)
            span.end()
        finally:
            self._context.detach(attached)


_NOTHING = contextlib.nullcontext()


class _CurrentContext:
    """OpenTelemetry's current context through its public function (``.get()``)."""

    def get(self) -> Any:
        from opentelemetry import context

        return context.get_current()


class _CurrentSpan:
    """The current span as a one-key mapping (``.get()``), through the public function."""

    KEY = "commet-webhooks-current-span"

    def get(self) -> dict[str, Any]:
        from opentelemetry import trace

        return {self.KEY: trace.get_current_span()}


def _span_lookup() -> tuple[Any, Any]:
    """Where to read the current span: ``(holder, key)``, ``holder.get()[key]`` being it.

    ``trace.get_current_span()`` takes three Python calls to read one key of the context
    that OpenTelemetry keeps in a context variable, and every delivery asks it. With
    the default runtime context, the variable and the key are read directly: a C call
    and a dictionary lookup. Any other setup (another runtime context, an API that
    moved the key) goes through the public functions.
    """
    from opentelemetry import context

    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # pragma: no cover - an API that moved them
        return _CurrentSpan(), _CurrentSpan.KEY
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, contextvars.ContextVar):
        return variable, _SPAN_KEY
    return _CurrentContext(), _SPAN_KEY


def _drops_roots(sampler: object) -> bool:
    """Whether an SDK tracer's sampler drops every span without a parent (``always_off``)."""
    if sampler is None:
        return False
    try:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_OFF
    except ImportError:  # another SDK
        return False
    return sampler is ALWAYS_OFF or sampler is DEFAULT_OFF


def _event_attributes(event_type: str, event_id: str | None) -> dict[str, str]:
    attributes = {"commet.event.type": event_type}
    if event_id is not None:
        attributes["commet.event.id"] = event_id
        attributes["messaging.message.id"] = event_id
    return attributes


class _Scope:
    """Around one handler or store call of a delivery whose span records: a child span,
    and the call's timing appended to the delivery as the core appends it for others."""

    __slots__ = (
        "_attached", "_attributes", "_kind", "_name", "_obs", "_span", "_started", "_token"
    )  # fmt: skip

    def __init__(
        self, obs: Instrumentation, token: Any, kind: str, name: str, attributes: dict[str, Any]
    ) -> None:
        self._obs, self._token, self._kind, self._name = obs, token, kind, name
        self._attributes = attributes
        self._span: Any = None

    def __enter__(self) -> None:
        parent = getattr(self._token, "span", None)
        if parent is not None:
            span_name = (
                f"handler {self._name}"
                if self._kind == "handler"
                else f"idempotency store {self._name}"
            )
            try:
                self._span, self._attached = self._obs._child_span(
                    parent, span_name, self._attributes
                )
            except Exception:
                logger.exception("instrumentation failed to start a %s span", self._kind)
        self._started = perf_counter()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        seconds = perf_counter() - self._started
        try:
            token = self._token
            if isinstance(token, _Delivery):
                token.append((self._kind, self._name, seconds, exc is not None))
            if self._span is not None:
                self._obs._end_child(self._span, self._attached, exc)
        except Exception:
            logger.exception("instrumentation failed to record a %s call", self._kind)


# ---------------------------------------------------------------- the switch


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(module: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra("commet_webhooks.observability", extra, exc) from exc


def instrument(
    webhooks: Webhooks,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    prometheus_registry: CollectorRegistry | None = None,
    tracing: bool | None = None,
    metrics: bool | None = None,
    prometheus: bool | None = None,
    logs: bool = True,
    log_level: int = logging.INFO,
    enrich_http_span: bool = True,
    follow_parent_sampling: bool = True,
) -> Instrumentation:
    """Install tracing, metrics and logs on ``webhooks``; return the observer installed.

    Each of ``tracing``, ``metrics`` (OpenTelemetry metrics) and ``prometheus`` is on
    when it is ``True`` (its extra must then be installed), off when ``False``, and by
    default on when its package is installed or its provider/registry is given.
    Without a provider, OpenTelemetry's global ones are used (configure the SDK as
    usual); without ``prometheus_registry``, ``prometheus_client``'s default registry.
    If you already export OpenTelemetry metrics to Prometheus, pass ``prometheus=False``
    so the same metrics are not exposed twice.

    ``logs``: a summary record per delivery on ``commet_webhooks.delivery`` (``log_level``
    for 2xx answers, WARNING otherwise) and the delivery's fields on the library's records.
    ``enrich_http_span``: also put ``commet.event.type``/``commet.event.id``/``commet.outcome``
    on the framework's HTTP span, when there is a recording one.
    ``follow_parent_sampling``: when the current span was not sampled, make no span of
    our own (the parent-based sampler, OpenTelemetry's default, would drop it anyway)
    and propagate the current context; ``False`` asks the sampler for every delivery.
    """
    from ..dispatch import Webhooks as _Webhooks

    if not isinstance(webhooks, _Webhooks):
        raise TypeError(f"instrument() takes a Webhooks, got {type(webhooks).__name__}")
    current = webhooks.observer
    if current is not None and not isinstance(current, Instrumentation):
        raise ValueError(
            "this Webhooks already has an observer of its own; instrument() would replace it"
        )

    def wanted(flag: bool | None, given: object, module: str, extra: str) -> bool:
        if flag is False:
            return False
        if flag is True or given is not None:
            _require(module, extra)
            return True
        return _available(module)

    use_tracing = wanted(tracing, tracer_provider, "opentelemetry.trace", "otel")
    use_metrics = wanted(metrics, meter_provider, "opentelemetry.metrics", "otel")
    use_prometheus = wanted(prometheus, prometheus_registry, "prometheus_client", "prometheus")
    registry = prometheus_registry
    if use_prometheus and registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    keys = webhooks._keys
    store = webhooks.idempotency_store
    instrumentation = Instrumentation(
        fingerprints=tuple(keys.fingerprint(i) for i in range(len(keys))),
        store_backend=None if store is None else type(store).__name__,
        tracer_provider=tracer_provider,
        tracing=use_tracing,
        meter_provider=meter_provider,
        otel_metrics_enabled=use_metrics,
        prometheus_registry=registry if use_prometheus else None,
        logs=logs,
        log_level=log_level,
        enrich_http_span=enrich_http_span,
        follow_parent_sampling=follow_parent_sampling,
    )
    webhooks.observer = instrumentation
    return instrumentation


def uninstrument(webhooks: Webhooks) -> None:
    """Remove what :func:`instrument` installed (the metrics already exported stay)."""
    if isinstance(webhooks.observer, Instrumentation):
        webhooks.observer = None


@contextlib.contextmanager
def continue_trace(delivery: OffloadedDelivery | Mapping[str, str]) -> Iterator[None]:
    """Make the trace a delivery was queued under current, around a worker's call.

    >>> with continue_trace(delivery):
    ...     webhooks.handle_offloaded(delivery)

    The worker's delivery span then joins the receiver's trace. Without OpenTelemetry
    installed, or without a context in the delivery, it does nothing.
    """
    carrier = delivery if isinstance(delivery, Mapping) else delivery.context
    if not carrier or not _available("opentelemetry.context"):
        yield
        return
    from opentelemetry import context, propagate

    attached = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(attached)


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app serving the Prometheus exposition of ``registry`` (default: the global one).

    >>> Mount("/metrics", app=metrics_asgi_app())
    """
    _require("prometheus_client", "prometheus")
    from prometheus_client import REGISTRY, make_asgi_app

    return make_asgi_app(registry if registry is not None else REGISTRY)


def metrics_wsgi_app(registry: CollectorRegistry | None = None) -> Any:
    """A WSGI app serving the Prometheus exposition of ``registry`` (default: the global one)."""
    _require("prometheus_client", "prometheus")
    from prometheus_client import REGISTRY, make_wsgi_app

    return make_wsgi_app(registry if registry is not None else REGISTRY)
