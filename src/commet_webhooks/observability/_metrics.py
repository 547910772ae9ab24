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
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events import EVENT_TYPES

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

NO_EVENT = "none"
"""The ``event_type`` label of an answer given before any event could be read (403, 413...)."""
UNKNOWN_EVENT = "unknown"
"""The ``event_type`` label of an event type this library does not model (bounded labels)."""

Calls = list[tuple[str, str, float, bool]]
"""A delivery's handler and store calls in order: ``(kind, name, seconds, raised)``."""


def event_label(event_type: str) -> str:
    """The metric label for an event type: itself when registered, else ``unknown``."""
    return event_type if event_type in EVENT_TYPES else UNKNOWN_EVENT


FOLD_EVERY = 4096
"""Raw values kept before they are counted: when one series, or the deliveries as a
whole, reach this many, everything is folded (a read folds at once). Large batches
keep the per-series cost of a fold (a sort, a search per bucket bound) small per
delivery; memory stays bounded by a few of these batches."""

SPECS = {spec.otel.split(".", 1)[1]: spec for spec in METRICS}


def _take(values: list[Any]) -> list[Any]:
    """Remove and return what ``values`` holds now; what other threads append meanwhile stays."""
    count = len(values)
    taken = values[:count]
    del values[:count]
    return taken


class _Raw:
    """What one series received since the last fold: durations, and failures as a count."""

    __slots__ = ("failures", "values")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.failures: list[None] = []


class _Series:
    """One (event type label, outcome): its deliveries' durations, and its handlers'."""

    __slots__ = ("handlers", "label", "outcome", "raw")

    def __init__(self, label: str, outcome: str, handlers: dict[str, _Raw]) -> None:
        self.label, self.outcome, self.handlers = label, outcome, handlers
        self.raw: list[float] = []


class Aggregate:
    """Counts and histograms of the deliveries a receiver answered, for the exporters.

    Recording a delivery appends its values to plain lists (an atomic operation: the
    answer's path takes no lock, and a thread switch loses nothing); reads, and any
    list reaching ``FOLD_EVERY`` values, fold them into the series under one lock,
    sorting each batch once to count its buckets. Exporters read a :meth:`snapshot`
    when they collect (a Prometheus scrape, an OpenTelemetry collection).
    ``histograms=False`` keeps counters only (OpenTelemetry records its histograms
    itself).
    """

    def __init__(self, *, histograms: bool = True) -> None:
        self._lock = threading.Lock()
        self._streak_lock = threading.Lock()
        self._histograms = histograms
        # Each folded series is a mutable cell: [value] for a counter; for a histogram,
        # the count in each bucket (not cumulative), the +Inf bucket, then the sum.
        self.counters: dict[str, dict[tuple[str, ...], list[float]]] = {
            key: {} for key, spec in SPECS.items() if spec.kind == "counter"
        }
        self.histograms: dict[str, dict[tuple[str, ...], list[float]]] = {
            key: {} for key, spec in SPECS.items() if spec.kind == "histogram"
        }
        self.streak = 0
        # Raw values since the last fold. A series is found with one dictionary lookup
        # by (event type, outcome) and made once per (label, outcome): types nobody
        # registered share the "unknown" series and never grow the table.
        self._series: dict[tuple[str | None, str], _Series] = {}
        self._by_label: dict[tuple[str, str], _Series] = {}
        self._handlers: dict[str, dict[str, _Raw]] = {}  # label -> handler name -> raw
        self._stores: dict[str, _Raw] = {}
        self._secrets: dict[tuple[str, str], list[None]] = {}
        self._admission: list[float] = []

    def _cell(self, key: str, labels: tuple[str, ...]) -> list[float]:
        return self.counters[key].setdefault(labels, [0.0])

    def _hist(self, key: str, labels: tuple[str, ...]) -> list[float] | None:
        if not self._histograms:
            return None
        size = len(SPECS[key].buckets) + 2
        return self.histograms[key].setdefault(labels, [0.0] * size)

    def record(
        self,
        event_type: str | None,
        outcome: str,
        seconds: float,
        ok: bool,
        admission: float | None,
        secret: tuple[str, str] | None,
        calls: Calls | None,
    ) -> None:
        """Count one answered delivery (every delivery's path: appends only)."""
        series = self._series.get((event_type, outcome))
        if series is None:
            series = self._new_series(event_type, outcome)
        raw = series.raw
        raw.append(seconds)
        if ok:
            self.streak = 0
        elif outcome != "not_allowed":  # Commet only POSTs: a 405 was not Commet
            with self._streak_lock:  # failures are rare; no increment is lost
                self.streak += 1
        if admission is not None:
            self._admission.append(admission)
        if secret is not None:
            used = self._secrets.get(secret)
            if used is None:
                used = self._secrets.setdefault(secret, [])
            used.append(None)
        if calls is not None:
            for kind, name, took, failed in calls:
                if kind == "handler":
                    call = series.handlers.get(name)
                    if call is None:
                        call = series.handlers.setdefault(name, _Raw())
                else:
                    call = self._stores.get(name)
                    if call is None:
                        call = self._stores.setdefault(name, _Raw())
                call.values.append(took)
                if failed:
                    call.failures.append(None)
        if len(raw) >= FOLD_EVERY or len(self._admission) >= FOLD_EVERY:
            self.fold()

    def _new_series(self, event_type: str | None, outcome: str) -> _Series:
        label = NO_EVENT if event_type is None else event_label(event_type)
        with self._lock:
            series = self._by_label.get((label, outcome))
            if series is None:
                handlers = self._handlers.setdefault(label, {})
                series = self._by_label[(label, outcome)] = _Series(label, outcome, handlers)
            if label is not UNKNOWN_EVENT:
                self._series[(event_type, outcome)] = series
            return series

    def fold(self) -> None:
        """Count every raw value recorded so far into the series."""
        with self._lock:
            for series in list(self._by_label.values()):
                values = _take(series.raw)
                if not values:
                    continue
                label, outcome = series.label, series.outcome
                self._cell("deliveries", (label, outcome))[0] += len(values)
                if outcome == "duplicate":
                    self._cell("duplicates", (label,))[0] += len(values)
                self._bucket("delivery.duration", (label,), values)
            for label, handlers in list(self._handlers.items()):
                for name, call in list(handlers.items()):
                    self._fold_call("handler", (label, name), call)
            for operation, call in list(self._stores.items()):
                self._fold_call("store", (operation,), call)
            for secret, used in list(self._secrets.items()):
                count = len(_take(used))
                if count:
                    self._cell("secret.used", secret)[0] += count
            self._bucket("admission.duration", (), _take(self._admission))

    def _fold_call(self, kind: str, labels: tuple[str, ...], call: _Raw) -> None:
        values = _take(call.values)
        failures = len(_take(call.failures))
        if values:
            self._bucket(f"{kind}.duration", labels, values)
        if values or failures:
            # Made with the first call, so a scrape shows the series at zero.
            self._cell(f"{kind}.errors", labels)[0] += failures

    def _bucket(self, key: str, labels: tuple[str, ...], values: list[float]) -> None:
        """Add ``values`` to a histogram: one sort, then one search per bucket bound."""
        if not values:
            return
        histogram = self._hist(key, labels)
        if histogram is None:
            return
        values.sort()
        below = 0
        for i, bound in enumerate(SPECS[key].buckets):
            upto = bisect_right(values, bound, below)  # a bucket counts values <= its bound
            histogram[i] += upto - below
            below = upto
        histogram[-2] += len(values) - below  # +Inf
        histogram[-1] += math.fsum(values)

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

    def record(
        self,
        event_type: str | None,
        outcome: str,
        seconds: float,
        ok: bool,
        admission: float | None,
        secret: tuple[str, str] | None,
        calls: Calls | None,
    ) -> None:
        # Counters from the aggregate (its histograms are off: no admission values).
        self._aggregate.record(event_type, outcome, seconds, ok, None, secret, calls)
        label = NO_EVENT if event_type is None else event_label(event_type)
        self._delivery_duration.record(seconds, self._attrs(("event_type",), label))
        if admission is not None:
            self._admission_duration.record(admission)
        for kind, name, took, _ in calls or ():
            if kind == "handler":
                attributes = self._attrs(("event_type", "handler"), label, name)
                self._handler_duration.record(took, attributes)
            else:
                self._store_duration.record(took, self._attrs(("operation",), name))


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
