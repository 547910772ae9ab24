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

import math
import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
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

FOLD_EVERY = 256
"""Deliveries queued before they are counted (a read counts the queue at once)."""

SPECS = {spec.otel.split(".", 1)[1]: spec for spec in METRICS}


class Aggregate:
    """Counts and histograms kept in plain dictionaries under one lock.

    A delivery costs an append to a queue, folded into the series in batches; exporters
    read a snapshot (folded first) when they collect (a Prometheus scrape, an
    OpenTelemetry collection). ``histograms=False`` keeps counters only (OpenTelemetry
    records its histograms itself).
    """

    def __init__(self, *, histograms: bool = True) -> None:
        self._lock = threading.Lock()
        self._histograms = histograms
        # Each series is a mutable cell: [value] for a counter; for a histogram, the
        # count in each bucket (not cumulative), the +Inf bucket, then the sum.
        self.counters: dict[str, dict[tuple[str, ...], list[float]]] = {
            key: {} for key, spec in SPECS.items() if spec.kind == "counter"
        }
        self.histograms: dict[str, dict[tuple[str, ...], list[float]]] = {
            key: {} for key, spec in SPECS.items() if spec.kind == "histogram"
        }
        self.streak = 0
        self._pending: deque[tuple[Any, ...]] = deque()
        # The cells a delivery touches, found with one dictionary lookup per kind.
        self._by_outcome: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._by_handler: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._by_store: dict[str, tuple[Any, Any]] = {}
        self._by_secret: dict[tuple[str, str], list[float]] = {}
        self._admission = self._hist("admission.duration", ())
        self._delivery_bounds = SPECS["delivery.duration"].buckets
        self._handler_bounds = SPECS["handler.duration"].buckets
        self._store_bounds = SPECS["store.duration"].buckets
        self._admission_bounds = SPECS["admission.duration"].buckets

    def _cell(self, key: str, labels: tuple[str, ...]) -> list[float]:
        return self.counters[key].setdefault(labels, [0.0])

    def _hist(self, key: str, labels: tuple[str, ...]) -> list[float] | None:
        if not self._histograms:
            return None
        size = len(SPECS[key].buckets) + 2
        return self.histograms[key].setdefault(labels, [0.0] * size)

    def delivery(self, delivery: Any, outcome: str, seconds: float, ok: bool) -> None:
        """Queue what one delivery measured; :meth:`fold` counts it.

        An append to a deque is atomic, so the answer's path takes no lock. Every
        ``FOLD_EVERY`` deliveries, and before every read, the queue is folded into the
        series in one pass: cheaper per delivery than updating each series at once.
        """
        pending = self._pending
        pending.append(
            (
                delivery.label,
                outcome,
                seconds,
                ok,
                delivery.admission_seconds,
                delivery.secret,
                delivery.handlers,
                delivery.stores,
            )
        )
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Count the queued deliveries, in the order they were answered."""
        with self._lock:
            pending = self._pending
            take = pending.popleft
            by_outcome = self._by_outcome
            by_secret = self._by_secret
            admission = self._admission
            delivery_bounds = self._delivery_bounds
            admission_bounds = self._admission_bounds
            streak = self.streak
            while pending:
                label, outcome, seconds, ok, spent, secret, handlers, stores = take()
                cells = by_outcome.get((label, outcome))
                if cells is None:
                    cells = self._outcome_cells(label, outcome)
                count, histogram, duplicates = cells
                count[0] += 1.0
                if histogram is not None:
                    histogram[bisect_left(delivery_bounds, seconds)] += 1.0
                    histogram[-1] += seconds
                if duplicates is not None:
                    duplicates[0] += 1.0
                if ok:
                    streak = 0
                elif outcome != "not_allowed":  # Commet only POSTs: a 405 was not Commet
                    streak += 1
                if spent is not None and admission is not None:
                    admission[bisect_left(admission_bounds, spent)] += 1.0
                    admission[-1] += spent
                if secret is not None:
                    used = by_secret.get(secret)
                    if used is None:
                        used = by_secret[secret] = self._cell("secret.used", secret)
                    used[0] += 1.0
                if handlers is not None:
                    self._handlers(label, handlers)
                if stores is not None:
                    self._stores(stores)
            self.streak = streak

    def _outcome_cells(self, label: str, outcome: str) -> tuple[Any, Any, Any]:
        cells = self._by_outcome[(label, outcome)] = (
            self._cell("deliveries", (label, outcome)),
            self._hist("delivery.duration", (label,)),
            self._cell("duplicates", (label,)) if outcome == "duplicate" else None,
        )
        return cells

    def _handlers(self, event_type: str, calls: list[tuple[str, float, bool]]) -> None:
        for name, spent, failed in calls:
            cells = self._by_handler.get((event_type, name))
            if cells is None:
                labels = (event_type, name)
                cells = self._by_handler[labels] = (
                    self._hist("handler.duration", labels),
                    self._cell("handler.errors", labels),
                )
            histogram, errors = cells
            if histogram is not None:
                histogram[bisect_left(self._handler_bounds, spent)] += 1.0
                histogram[-1] += spent
            if failed:
                errors[0] += 1.0

    def _stores(self, calls: list[tuple[str, float, bool]]) -> None:
        for operation, spent, failed in calls:
            cells = self._by_store.get(operation)
            if cells is None:
                cells = self._by_store[operation] = (
                    self._hist("store.duration", (operation,)),
                    self._cell("store.errors", (operation,)),
                )
            histogram, errors = cells
            if histogram is not None:
                histogram[bisect_left(self._store_bounds, spent)] += 1.0
                histogram[-1] += spent
            if failed:
                errors[0] += 1.0

    def snapshot(self) -> tuple[dict[str, dict[tuple[str, ...], float]], dict[str, Any], int]:
        """Counters (created-but-zero error series left out), histograms, failure streak."""
        self.fold()
        with self._lock:
            counters = {
                key: {labels: cell[0] for labels, cell in series.items() if cell[0]}
                for key, series in self.counters.items()
            }
            histograms = {
                key: {labels: list(slots) for labels, slots in series.items()}
                for key, series in self.histograms.items()
            }
            return counters, histograms, self.streak


class PrometheusMetrics(Aggregate):
    """The metrics, exposed through a ``prometheus_client`` registry by a custom collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry
        registry.register(_Collector(self))


class _Collector:
    """``prometheus_client`` collector reading an :class:`Aggregate` at scrape time."""

    def __init__(self, aggregate: Aggregate) -> None:
        self._aggregate = aggregate

    def describe(self) -> list[Any]:
        return list(self._families(({}, {}, 0), samples=False))

    def collect(self) -> list[Any]:
        return list(self._families(self._aggregate.snapshot(), samples=True))

    def _families(self, snapshot: tuple[Any, Any, int], *, samples: bool) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        counters, histograms, streak = snapshot
        for key, spec in SPECS.items():
            labels = list(spec.labels)
            if spec.kind == "counter":
                name = spec.prometheus.removesuffix("_total")
                family: Any = CounterMetricFamily(name, spec.description, labels=labels)
                for values, total in counters.get(key, {}).items():
                    family.add_metric(list(values), total)
            elif spec.kind == "histogram":
                family = HistogramMetricFamily(spec.prometheus, spec.description, labels=labels)
                for values, slots in histograms.get(key, {}).items():
                    running, buckets = 0.0, []
                    for bound, count in zip((*spec.buckets, math.inf), slots, strict=False):
                        running += count
                        buckets.append((_le(bound), running))
                    family.add_metric(list(values), buckets, slots[-1])
            else:
                family = GaugeMetricFamily(spec.prometheus, spec.description, labels=labels)
                if samples:
                    family.add_metric([], streak)
            yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


class OtelMetrics:
    """The metrics as OpenTelemetry instruments from one meter provider.

    Counters and the failure streak are observable instruments reading an
    :class:`Aggregate` (a delivery costs a dictionary update, not an SDK call);
    durations are histograms recorded as they happen.
    """

    def __init__(self, meter_provider: MeterProvider | None, version: str) -> None:
        from opentelemetry import metrics

        meter = metrics.get_meter("commet_webhooks", version, meter_provider=meter_provider)
        self._aggregate = Aggregate(histograms=False)

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

        for key, spec in SPECS.items():
            if spec.kind == "counter":
                meter.create_observable_counter(
                    spec.otel,
                    [self._counter_callback(key)],
                    unit=spec.unit,
                    description=spec.description,
                )
        streak = SPECS["consecutive_failures"]
        meter.create_observable_gauge(
            streak.otel, [self._observe_streak], unit=streak.unit, description=streak.description
        )
        self._delivery_duration = histogram("delivery.duration")
        self._admission_duration = histogram("admission.duration")
        self._handler_duration = histogram("handler.duration")
        self._store_duration = histogram("store.duration")
        # Attribute dicts are reused: building them is a good part of a record's cost.
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}

    def _counter_callback(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        names = SPECS[key].labels

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            from opentelemetry.metrics import Observation

            series = self._aggregate.snapshot()[0][key]
            return [
                Observation(total, dict(zip(names, labels, strict=True)))
                for labels, total in series.items()
            ]

        return observe

    def _observe_streak(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [Observation(self._aggregate.snapshot()[2])]

    def _attrs(self, names: tuple[str, ...], *values: str) -> dict[str, str]:
        key = (*names, *values)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = dict(zip(names, values, strict=True))
        return attributes

    def delivery(self, delivery: Any, outcome: str, seconds: float, ok: bool) -> None:
        self._aggregate.delivery(delivery, outcome, seconds, ok)
        label = delivery.label
        self._delivery_duration.record(seconds, self._attrs(("event_type",), label))
        if delivery.admission_seconds is not None:
            self._admission_duration.record(delivery.admission_seconds)
        if delivery.handlers is not None:
            for name, spent, _ in delivery.handlers:
                self._handler_duration.record(
                    spent, self._attrs(("event_type", "handler"), label, name)
                )
        if delivery.stores is not None:
            for operation, spent, _ in delivery.stores:
                self._store_duration.record(spent, self._attrs(("operation",), operation))


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
