"""The emulator's own metrics: delivery attempts, events that failed, auto-disables.

The delivery engine records into an :class:`EmulatorMetrics` (plain numbers under a
lock; nothing else to install), and ``GET /metrics`` shows them in Prometheus' text
format through a ``prometheus_client`` registry of the app's own, made at the first
scrape. Without ``prometheus_client`` (extra ``prometheus``) that route answers 501
with the command that installs it.

Labels stay bounded: ``event_type`` is a registered type
(:data:`commet_webhooks.events.EVENT_TYPES`) or ``unknown``, and ``result`` one of
:data:`ATTEMPT_RESULTS`. Auto-disables carry no label: the dashboard marks the
endpoint "auto-disabled" and the log names it.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .._optional import missing_extra
from ..events import EVENT_TYPES
from .storage.outbox import AttemptOutcome

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "ATTEMPT_BUCKETS",
    "ATTEMPT_RESULTS",
    "EMULATOR_METRICS",
    "EmulatorMetricSpec",
    "EmulatorMetrics",
    "MetricsSnapshot",
    "attempt_result",
    "metrics_route",
]

#: Seconds. The platform's timeout (10 s) is a bound; 30 s covers a longer ``timeout``.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: What an attempt's ``result`` label can be.
ATTEMPT_RESULTS = ("ok", "http_error", "timeout", "connection_error", "dropped")


@dataclass(frozen=True)
class EmulatorMetricSpec:
    """One metric as a scrape shows it (counters with their ``_total``)."""

    name: str
    kind: str
    """``counter`` or ``histogram``."""
    labels: tuple[str, ...]
    description: str
    buckets: tuple[float, ...] = ()


EMULATOR_METRICS: tuple[EmulatorMetricSpec, ...] = (
    EmulatorMetricSpec(
        "commet_emulator_delivery_attempts_total", "counter", ("event_type", "result"),
        "Webhook POSTs the emulator made, by event type and result (ok, http_error, "
        "timeout, connection_error, dropped).",
    ),
    EmulatorMetricSpec(
        "commet_emulator_delivery_attempt_duration_seconds", "histogram", ("event_type",),
        "Time from sending an attempt to the receiver's answer (or to giving up).",
        ATTEMPT_BUCKETS,
    ),
    EmulatorMetricSpec(
        "commet_emulator_events_failed_total", "counter", ("event_type",),
        "Deliveries whose scheduled attempts all failed: the event counts towards "
        "disabling its endpoint.",
    ),
    EmulatorMetricSpec(
        "commet_emulator_endpoint_auto_disables_total", "counter", (),
        "Endpoints disabled after too many events in a row failed.",
    ),
)  # fmt: skip

_ATTEMPTS, _DURATION, _FAILED, _DISABLES = EMULATOR_METRICS


def attempt_result(outcome: AttemptOutcome) -> str:
    """The ``result`` label of one attempt (one of :data:`ATTEMPT_RESULTS`)."""
    if outcome.failure == "dropped":
        return "dropped"
    if outcome.status_code is not None:
        return "ok" if outcome.ok else "http_error"
    return outcome.failure or "connection_error"


def _event_label(event_type: str) -> str:
    return event_type if event_type in EVENT_TYPES else "unknown"


@dataclass
class MetricsSnapshot:
    """The numbers at one moment. Histogram slots are per bucket (not cumulative),
    then the +Inf bucket, then the sum."""

    attempts: dict[tuple[str, str], float] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, float] = field(default_factory=dict)
    auto_disables: float = 0.0


class EmulatorMetrics:
    """What the delivery engine did, counted since the app started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = MetricsSnapshot()
        self._registry: CollectorRegistry | None = None

    def attempt(self, event_type: str, outcome: AttemptOutcome) -> None:
        """One POST and how it went."""
        label = _event_label(event_type)
        result = attempt_result(outcome)
        seconds = max(outcome.latency_ms, 0.0) / 1000
        with self._lock:
            data = self._data
            data.attempts[label, result] = data.attempts.get((label, result), 0.0) + 1.0
            slots = data.durations.get(label)
            if slots is None:
                slots = data.durations[label] = [0.0] * (len(ATTEMPT_BUCKETS) + 2)
            slots[bisect_left(ATTEMPT_BUCKETS, seconds)] += 1.0
            slots[-1] += seconds

    def event_failed(self, event_type: str) -> None:
        """A delivery of this event failed for good (its last scheduled attempt failed)."""
        label = _event_label(event_type)
        with self._lock:
            self._data.failed[label] = self._data.failed.get(label, 0.0) + 1.0

    def auto_disabled(self) -> None:
        """An endpoint was disabled for its run of failed events."""
        with self._lock:
            self._data.auto_disables += 1.0

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            data = self._data
            return MetricsSnapshot(
                attempts=dict(data.attempts),
                durations={label: list(slots) for label, slots in data.durations.items()},
                failed=dict(data.failed),
                auto_disables=data.auto_disables,
            )

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics as ``prometheus_client`` writes them for this ``Accept`` header,
        and their content type; ``ImportError`` when it is not installed."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        with self._lock:
            if self._registry is None:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(_Collector(self))
                self._registry = registry
            registry = self._registry
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type


class _Collector:
    """Turns an :class:`EmulatorMetrics` snapshot into metric families at scrape time."""

    def __init__(self, metrics: EmulatorMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return list(self._families(None))

    def collect(self) -> list[Any]:
        return list(self._families(self._metrics.snapshot()))

    def _families(self, data: MetricsSnapshot | None) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        def counter(spec: EmulatorMetricSpec) -> CounterMetricFamily:
            name = spec.name.removesuffix("_total")
            return CounterMetricFamily(name, spec.description, labels=list(spec.labels))

        attempts, failed, disables = counter(_ATTEMPTS), counter(_FAILED), counter(_DISABLES)
        duration = HistogramMetricFamily(
            _DURATION.name, _DURATION.description, labels=list(_DURATION.labels)
        )
        if data is not None:
            for (label, result), total in sorted(data.attempts.items()):
                attempts.add_metric([label, result], total)
            for label, slots in sorted(data.durations.items()):
                running, buckets = 0.0, []
                for bound, count in zip((*ATTEMPT_BUCKETS, math.inf), slots, strict=False):
                    running += count
                    buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
                duration.add_metric([label], buckets, slots[-1])
            for label, total in sorted(data.failed.items()):
                failed.add_metric([label], total)
            disables.add_metric([], data.auto_disables)
        yield from (attempts, duration, failed, disables)


def metrics_route(metrics: EmulatorMetrics) -> Route:
    """``GET /metrics``: Prometheus exposition, or 501 without ``prometheus_client``.

    Like the dashboard it needs no API key (it holds counts, never a secret or a
    body); the app's host check still applies.
    """

    async def scrape(request: Request) -> Response:
        try:
            body, content_type = metrics.exposition(request.headers.get("accept", ""))
        except ImportError as exc:
            message = str(missing_extra("the emulator's /metrics", "prometheus", exc))
            return PlainTextResponse(message + "\n", status_code=501)
        return Response(body, headers={"Content-Type": content_type})

    return Route("/metrics", scrape, methods=["GET"])
