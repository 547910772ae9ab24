"""What instrumentation costs per delivery: ``handle_sync`` with and without ``instrument()``.

Every figure is a ratio against the uninstrumented receiver measured in the same
process and run, on the same bodies (all registered event types, one after another).
Tracing runs through the OpenTelemetry SDK with sampling off (``ALWAYS_OFF``), the
setting of a production receiver that samples a small share of traces, or none.
Logging is configured as in production: the per-delivery INFO record is off unless
the application enables INFO for ``commet_webhooks``.

Run: ``.venv/bin/python bench/observe_bench.py`` (about a minute; best of 15 interleaved
rounds, as the shared machine is noisy).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from commet_webhooks import DeliveryRecord, MemoryStore, Observer, Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_bench_secret_0123456789abcdef"
TARGET = 1.5


def requests() -> list[tuple[bytes, dict[str, str]]]:
    return [signed_request(sample_event(name), SECRET) for name in EVENT_TYPES]


def receiver(*, store: bool) -> Webhooks:
    def handler(event: Any) -> None:
        return None

    # A handler for every event; a fresh MemoryStore sees every delivery as new.
    return Webhooks(
        SECRET,
        on_payload=handler,
        idempotency_store=_ForgetfulStore() if store else None,
    )


class _MinimalObserver(Observer):
    """What any per-delivery instrumentation pays before it records anything: a token
    (a DeliveryRecord, so the core times each handler itself) and the log context (a
    context variable). Context for the target: the floor of the hook design, not a
    configuration anyone would run."""

    def __init__(self) -> None:
        from commet_webhooks.observability._logs import CURRENT

        self._current = CURRENT

    def delivery_started(self, headers: Any) -> Any:
        token = _Token()
        token.context = self._current.set(token)
        return token

    def delivery_finished(self, token: Any, response: Any, seconds: float) -> None:
        self._current.reset(token.context)


class _Token(DeliveryRecord):
    context: Any = None


class _ForgetfulStore(MemoryStore):
    """A MemoryStore that forgets completed keys, so repeated bodies are never duplicates."""

    def complete(self, key: str, owner: str) -> bool:
        done = super().complete(key, owner)
        self._entries.pop(key, None)
        return done


def per_call(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Best seconds per call over ``rounds`` runs of ``calls`` calls."""
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def driver(webhooks: Webhooks, items: list[tuple[bytes, dict[str, str]]]) -> Callable[[], object]:
    state = {"i": 0}
    n = len(items)

    def call() -> object:
        i = state["i"]
        state["i"] = (i + 1) % n
        body, headers = items[i]
        response = webhooks.handle_sync(body, headers)
        assert response.status == 200, response.outcome
        return response

    return call


def measure(
    scenario: str,
    store: bool,
    setups: dict[str, Callable[[Webhooks], object]],
    items: list[tuple[bytes, dict[str, str]]],
    calls: int,
    rounds: int,
) -> list[tuple[str, str, float, float]]:
    """Best µs per event of each receiver, measured interleaved, and its ratio."""
    candidates = {"uninstrumented": driver(receiver(store=store), items)}
    for name, setup in setups.items():
        webhooks = receiver(store=store)
        setup(webhooks)
        candidates[name] = driver(webhooks, items)
    for fn in candidates.values():
        per_call(fn, 500, 1)  # warm up
    best = {name: float("inf") for name in candidates}
    # Interleaved rounds: load on the shared machine hits every receiver alike.
    for _ in range(rounds):
        for name, fn in candidates.items():
            best[name] = min(best[name], per_call(fn, calls, 1))
    base = best["uninstrumented"]
    return [(scenario, name, s * 1e6, s / base) for name, s in best.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a Prometheus row misses the target"
    )
    args = parser.parse_args()

    from opentelemetry import context, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from prometheus_client import CollectorRegistry

    from commet_webhooks.observability import instrument

    items = requests()
    print(f"bodies: {len(items)} event types; {args.rounds} rounds of {args.calls} calls")
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    setups: dict[str, Callable[[Webhooks], object]] = {
        "no-op Observer (the core's hook calls alone)": lambda w: setattr(
            w, "observer", Observer()
        ),
        "minimal observer: token, log context, handler timing": lambda w: setattr(
            w, "observer", _MinimalObserver()
        ),
        "Prometheus alone (no tracing, no log record)": lambda w: instrument(
            w,
            tracing=False,
            logs=False,
            prometheus_registry=CollectorRegistry(),
            metrics=False,
        ),
        "tracing (sampled off) + Prometheus + logs": lambda w: instrument(
            w,
            tracer_provider=tracer_provider,
            prometheus_registry=CollectorRegistry(),
            metrics=False,
        ),
        "tracing (sampled off) + OpenTelemetry metrics SDK + logs": lambda w: instrument(
            w, tracer_provider=tracer_provider, meter_provider=meter_provider, prometheus=False
        ),
    }
    # A framework's HTTP span that was not sampled (the usual case behind OpenTelemetry's
    # ASGI/WSGI instrumentation), current while both receivers run.
    unsampled_http_span = trace.NonRecordingSpan(
        trace.SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    rows = []
    for parent in ("unsampled HTTP span", "no parent span"):
        attached = None
        if parent == "unsampled HTTP span":
            attached = context.attach(trace.set_span_in_context(unsampled_http_span))
        try:
            for store in (False, True):
                scenario = f"{parent}, handler{' + MemoryStore' if store else ''}"
                rows += measure(scenario, store, setups, items, args.calls, args.rounds)
        finally:
            if attached is not None:
                context.detach(attached)
    print(f"{'scenario':42} {'receiver':58} {'µs/event':>9} {'ratio':>6}")
    failed = False
    for scenario, name, micros, ratio in rows:
        mark = ""
        if "Prometheus" in name and ratio > TARGET:
            mark, failed = f"  over the {TARGET}x target", True
        print(f"{scenario:42} {name:58} {micros:9.2f} {ratio:5.2f}x{mark}")
    print(f"target: instrumented <= {TARGET}x uninstrumented (tracing sampled off)")
    histogram = meter_provider.get_meter("bench").create_histogram("bench.seconds", unit="s")
    attributes = {"event_type": "payment.received"}
    record = per_call(lambda: histogram.record(0.001, attributes), args.calls, args.rounds)
    print(
        f"context: one OpenTelemetry SDK histogram.record() costs {record * 1e6:.2f} µs "
        "(3 to 5 per delivery with metrics=True)"
    )
    if failed and args.strict:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
