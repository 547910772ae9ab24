"""The metrics: one table of names, and the two ways to export them.

:data:`METRICS` is the single list both exporters are built from, so the names a
``prometheus_client`` scrape shows are the names OpenTelemetry's own Prometheus
exporter derives from the OpenTelemetry instruments (``commet_webhooks.deliveries``,
unit ``{delivery}``, counter -> ``commet_webhooks_deliveries_total``;
``commet_webhooks.delivery.duration``, unit ``s`` -> ``..._duration_seconds``).

Instruments are created once per Prometheus registry and once per meter provider, and
shared by every ``Webhooks`` instrumented with it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from prometheus_client import CollectorRegistry

__all__ = ["METRICS", "MetricSpec", "OtelMetrics", "PrometheusMetrics"]

# Seconds. A delivery has 10 s before Commet counts the attempt as failed: 10 is a bound.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0)
ADMISSION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05
)  # fmt: skip
STORE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip


@dataclass(frozen=True)
class MetricSpec:
    """One metric, as Prometheus names it and as OpenTelemetry does."""

    prometheus: str
    """The exposed name (counters include ``_total``)."""
    otel: str
    unit: str
    kind: str
    """``counter``, ``histogram`` or ``gauge``."""
    labels: tuple[str, ...]
    description: str
    buckets: tuple[float, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "commet_webhooks_deliveries_total", "commet_webhooks.deliveries", "{delivery}", "counter",
        ("event_type", "outcome"),
        "Deliveries answered, by event type and outcome (ok, duplicate, busy, ...).",
    ),
    MetricSpec(
        "commet_webhooks_delivery_duration_seconds", "commet_webhooks.delivery.duration", "s",
        "histogram", ("event_type",),
        "Time from receiving a delivery to its answer; Commet gives up after 10 s.",
        DELIVERY_BUCKETS,
    ),
    MetricSpec(
        "commet_webhooks_admission_duration_seconds", "commet_webhooks.admission.duration", "s",
        "histogram", (),
        "Size check, signature verification and parsing of one delivery.",
        ADMISSION_BUCKETS,
    ),
    MetricSpec(
        "commet_webhooks_handler_duration_seconds", "commet_webhooks.handler.duration", "s",
        "histogram", ("event_type", "handler"),
        "One handler call, by event type and handler.",
        DELIVERY_BUCKETS,
    ),
    MetricSpec(
        "commet_webhooks_handler_errors_total", "commet_webhooks.handler.errors", "{error}",
        "counter", ("event_type", "handler"),
        "Handler calls that raised.",
    ),
    MetricSpec(
        "commet_webhooks_store_duration_seconds", "commet_webhooks.store.duration", "s",
        "histogram", ("operation",),
        "One idempotency-store call (claim, complete, release).",
        STORE_BUCKETS,
    ),
    MetricSpec(
        "commet_webhooks_store_errors_total", "commet_webhooks.store.errors", "{error}", "counter",
        ("operation",),
        "Idempotency-store calls that failed (the store was unreachable or broken).",
    ),
    MetricSpec(
        "commet_webhooks_duplicates_total", "commet_webhooks.duplicates", "{delivery}", "counter",
        ("event_type",),
        "Deliveries of events already processed: answered 200 without running handlers.",
    ),
    MetricSpec(
        "commet_webhooks_secret_used_total", "commet_webhooks.secret.used", "{delivery}",
        "counter", ("secret_position", "secret_fingerprint"),
        "Which configured secret verified each delivery (its position and a short fingerprint).",
    ),
    MetricSpec(
        "commet_webhooks_consecutive_failures", "commet_webhooks.consecutive_failures",
        "{answer}", "gauge", (),
        "Non-2xx answers in a row (reset by any 2xx): Commet disables an endpoint whose "
        "deliveries keep failing.",
    ),
)  # fmt: skip

SPECS = {spec.otel.split(".", 1)[1]: spec for spec in METRICS}


class FailureStreak:
    """Non-2xx answers in a row, shared by every receiver exporting to one place."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def answered(self, ok: bool) -> int:
        with self._lock:
            self.value = 0 if ok else self.value + 1
            return self.value


class PrometheusMetrics:
    """The metrics as ``prometheus_client`` collectors in one registry.

    Label children are cached, so a delivery costs a dictionary lookup per metric.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def make(key: str) -> Any:
            spec = SPECS[key]
            name = spec.prometheus.removesuffix("_total")
            if spec.kind == "counter":
                return Counter(name, spec.description, spec.labels, registry=registry)
            if spec.kind == "histogram":
                return Histogram(
                    name, spec.description, spec.labels, registry=registry, buckets=spec.buckets
                )
            return Gauge(name, spec.description, spec.labels, registry=registry)

        self.registry = registry
        self.streak = FailureStreak()
        self._deliveries = make("deliveries")
        self._delivery_duration = make("delivery.duration")
        self.admission_duration = make("admission.duration")
        self._handler_duration = make("handler.duration")
        self._handler_errors = make("handler.errors")
        self._store_duration = make("store.duration")
        self._store_errors = make("store.errors")
        self._duplicates = make("duplicates")
        self._secret_used = make("secret.used")
        self._streak_gauge = make("consecutive_failures")
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def admitted(self, seconds: float, position: str | None, fingerprint: str | None) -> None:
        self.admission_duration.observe(seconds)
        if position is not None and fingerprint is not None:
            self._child(self._secret_used, position, fingerprint).inc()

    def handler(self, event_type: str, name: str, seconds: float, failed: bool) -> None:
        self._child(self._handler_duration, event_type, name).observe(seconds)
        if failed:
            self._child(self._handler_errors, event_type, name).inc()

    def store(self, operation: str, seconds: float, failed: bool) -> None:
        self._child(self._store_duration, operation).observe(seconds)
        if failed:
            self._child(self._store_errors, operation).inc()

    def finished(self, event_type: str, outcome: str, seconds: float, ok: bool) -> None:
        self._child(self._deliveries, event_type, outcome).inc()
        self._child(self._delivery_duration, event_type).observe(seconds)
        if outcome == "duplicate":
            self._child(self._duplicates, event_type).inc()
        self._streak_gauge.set(self.streak.answered(ok))


class OtelMetrics:
    """The metrics as OpenTelemetry instruments from one meter provider."""

    def __init__(self, meter_provider: MeterProvider | None, version: str) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter("commet_webhooks", version, meter_provider=meter_provider)
        self.streak = FailureStreak()

        def counter(key: str) -> Any:
            spec = SPECS[key]
            return meter.create_counter(spec.otel, unit=spec.unit, description=spec.description)

        def histogram(key: str) -> Any:
            spec = SPECS[key]
            try:
                return meter.create_histogram(
                    spec.otel,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets),
                )
            except TypeError:  # an API older than the bucket advice
                return meter.create_histogram(
                    spec.otel, unit=spec.unit, description=spec.description
                )

        self._deliveries = counter("deliveries")
        self._delivery_duration = histogram("delivery.duration")
        self._admission_duration = histogram("admission.duration")
        self._handler_duration = histogram("handler.duration")
        self._handler_errors = counter("handler.errors")
        self._store_duration = histogram("store.duration")
        self._store_errors = counter("store.errors")
        self._duplicates = counter("duplicates")
        self._secret_used = counter("secret.used")
        streak = SPECS["consecutive_failures"]
        meter.create_observable_gauge(
            streak.otel, [self._observe_streak], unit=streak.unit, description=streak.description
        )
        # Attribute dicts are reused: building them is most of an instrument call's cost.
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}

    def _observe_streak(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [Observation(self.streak.value)]

    def _attrs(self, names: Sequence[str], *values: str) -> dict[str, str]:
        key = (*names, *values)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = dict(zip(names, values, strict=True))
        return attributes

    def admitted(self, seconds: float, position: str | None, fingerprint: str | None) -> None:
        self._admission_duration.record(seconds)
        if position is not None and fingerprint is not None:
            self._secret_used.add(
                1, self._attrs(("secret_position", "secret_fingerprint"), position, fingerprint)
            )

    def handler(self, event_type: str, name: str, seconds: float, failed: bool) -> None:
        attributes = self._attrs(("event_type", "handler"), event_type, name)
        self._handler_duration.record(seconds, attributes)
        if failed:
            self._handler_errors.add(1, attributes)

    def store(self, operation: str, seconds: float, failed: bool) -> None:
        attributes = self._attrs(("operation",), operation)
        self._store_duration.record(seconds, attributes)
        if failed:
            self._store_errors.add(1, attributes)

    def finished(self, event_type: str, outcome: str, seconds: float, ok: bool) -> None:
        self._deliveries.add(1, self._attrs(("event_type", "outcome"), event_type, outcome))
        by_type = self._attrs(("event_type",), event_type)
        self._delivery_duration.record(seconds, by_type)
        if outcome == "duplicate":
            self._duplicates.add(1, by_type)
        self.streak.answered(ok)


_lock = threading.Lock()
_prometheus: weakref.WeakKeyDictionary[Any, PrometheusMetrics] = weakref.WeakKeyDictionary()
_otel: weakref.WeakKeyDictionary[Any, OtelMetrics] = weakref.WeakKeyDictionary()
_GLOBAL_METER = object()
_otel_global: dict[object, OtelMetrics] = {}


def prometheus_metrics(registry: CollectorRegistry) -> PrometheusMetrics:
    """The collectors in ``registry``, created the first time."""
    with _lock:
        found = _prometheus.get(registry)
        if found is None:
            found = _prometheus[registry] = PrometheusMetrics(registry)
        return found


def otel_metrics(meter_provider: MeterProvider | None, version: str) -> OtelMetrics:
    """The instruments from ``meter_provider`` (None: the global one), created the first time."""
    with _lock:
        if meter_provider is None:
            found = _otel_global.get(_GLOBAL_METER)
            if found is None:
                found = _otel_global[_GLOBAL_METER] = OtelMetrics(None, version)
            return found
        found = _otel.get(meter_provider)
        if found is None:
            found = _otel[meter_provider] = OtelMetrics(meter_provider, version)
        return found
