"""Real OpenTelemetry SDK providers with in-memory exporters, a private Prometheus registry,
and the receivers and queues the observability tests drive."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from commet_webhooks import MemoryStore, OffloadedDelivery, Webhooks
from commet_webhooks.observability import Instrumentation, instrument
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_observability_current"
OLD_SECRET = "whsec_observability_old"


@dataclass
class Telemetry:
    """Everything one test's receiver exported."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    registry: CollectorRegistry
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    seen: dict[str, Any] = field(default_factory=dict)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith(prefix)]

    def points(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
        """OpenTelemetry data points: (name, attributes) -> value (sum, or histogram count)."""
        found: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count
                        found[(metric.name, frozenset(point.attributes.items()))] = value
        return found

    def point(self, name: str, **attributes: str) -> Any:
        return self.points().get((name, frozenset(attributes.items())))

    def prom(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def make_telemetry() -> Telemetry:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Telemetry(spans, reader, CollectorRegistry(), tracer_provider, meter_provider)


def instrumented(telemetry: Telemetry, webhooks: Webhooks, **options: Any) -> Instrumentation:
    return instrument(
        webhooks,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        prometheus_registry=telemetry.registry,
        **options,
    )


def request(
    event_type: str = "payment.failed", secret: str = SECRET, **overrides: Any
) -> tuple[bytes, dict[str, str]]:
    return signed_request(sample_event(event_type, **overrides), secret)


def event_id(body: bytes) -> str:
    value: str = json.loads(body)["id"]
    return value


class ListQueue:
    """An in-process task queue that keeps deliveries in their wire form."""

    def __init__(self) -> None:
        self.items: list[OffloadedDelivery] = []
        self.down = False

    def publish(self, delivery: OffloadedDelivery) -> None:
        if self.down:
            raise ConnectionError("broker refused the connection")
        message = json.loads(json.dumps(delivery.to_message()))
        self.items.append(OffloadedDelivery.from_message(message))

    async def apublish(self, delivery: OffloadedDelivery) -> None:
        self.publish(delivery)


class DownStore(MemoryStore):
    """An idempotency store whose server is unreachable."""

    def claim(self, key: str, owner: str) -> Any:
        raise ConnectionError("connection refused")

    async def aclaim(self, key: str, owner: str) -> Any:
        raise ConnectionError("connection refused")
