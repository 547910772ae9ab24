"""Per-event cost of each idempotency store under concurrent load.

For every store this measures, with ``--concurrency`` workers (threads for the sync
methods, asyncio tasks for the async ones) each handling its share of fresh events:

* ``claim+complete``: the store's own work per event (what the dispatcher adds);
* ``handle``: a whole ``Webhooks.handle_sync`` / ``handle`` per event, compared with
  the same ``Webhooks`` without a store measured in the same run (the ratio column).

Run (Redis on 127.0.0.1:6379 and PostgreSQL with a ``test`` database must be up):
``.venv/bin/python bench/stores_bench.py [--events 2000] [--concurrency 8]``
(``--load paced --events 500`` for a short run).
Everything the run writes (a temporary SQLite file, a Redis key prefix, a PostgreSQL
schema) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import redis

from commet_webhooks import Webhooks
from commet_webhooks.stores import IdempotencyStore, MemoryStore
from commet_webhooks.stores.postgres import PostgresStore
from commet_webhooks.stores.redis import RedisStore
from commet_webhooks.stores.sqlite import SQLiteStore
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_bench_secret_0123456789abcdef"
TARGET_P50_MS = {"sqlite": 1.0, "redis": 0.5, "postgres": 2.0}


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def pacing(concurrency: int, rate: float | None) -> Callable[[int], float | None]:
    """When worker ``n``'s ``k``-th call is due (perf_counter), or None when unpaced.

    Paced workers together start ``rate`` calls per second, evenly interleaved: a steady
    load below saturation, so latency is the store's cost and not time spent queueing.
    """
    if rate is None:
        return lambda k: None
    start = time.perf_counter() + 0.05
    period = concurrency / rate
    return lambda k: start + k * period / concurrency


def run_threads(
    work: Callable[[int], object], count: int, concurrency: int, rate: float | None = None
) -> list[float]:
    """Run ``work(i)`` for every i on ``concurrency`` threads; per-call seconds."""
    samples: list[float] = []
    lock = threading.Lock()
    due = pacing(concurrency, rate)

    def worker(first: int) -> None:
        local = []
        for i in range(first, count, concurrency):
            at = due(i)
            if at is not None:
                time.sleep(max(0.0, at - time.perf_counter()))
            began = time.perf_counter()
            work(i)
            local.append(time.perf_counter() - began)
        with lock:
            samples.extend(local)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return samples


async def run_tasks(
    work: Callable[[int], Any], count: int, concurrency: int, rate: float | None = None
) -> list[float]:
    """``run_threads`` for coroutines: ``concurrency`` tasks on one event loop."""
    samples: list[float] = []
    due = pacing(concurrency, rate)

    async def worker(first: int) -> None:
        for i in range(first, count, concurrency):
            at = due(i)
            if at is not None:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
            began = time.perf_counter()
            await work(i)
            samples.append(time.perf_counter() - began)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return samples


def requests(count: int) -> list[tuple[bytes, dict[str, str]]]:
    return [signed_request(sample_event("payment.received"), SECRET) for _ in range(count)]


def noop(event: object) -> None:
    return None


def measure(
    store: IdempotencyStore | None, events: int, concurrency: int, rate: float | None
) -> dict[str, tuple[float, float]]:
    """Figures for one store and load: ``{"sync store": (p50, p99), "async handle": ...}``."""
    figures: dict[str, tuple[float, float]] = {}
    run = uuid.uuid4().hex[:8]
    webhooks = Webhooks(SECRET, on_payment_received=noop, idempotency_store=store)
    warm = requests(concurrency * 4)
    run_threads(lambda i: webhooks.handle_sync(*warm[i]), len(warm), concurrency)

    sync_requests = requests(events)
    figures["sync handle"] = percentiles(
        run_threads(lambda i: webhooks.handle_sync(*sync_requests[i]), events, concurrency, rate)
    )
    if store is not None:

        def claim_complete(i: int) -> None:
            key = f"{run}-s-{i}"
            store.claim(key, "bench")
            store.complete(key, "bench")

        figures["sync store"] = percentiles(run_threads(claim_complete, events, concurrency, rate))

    async def async_figures() -> None:
        async_requests = requests(events)
        warm_async = requests(concurrency * 4)

        async def handle(i: int) -> None:
            await webhooks.handle(*async_requests[i])

        async def handle_warm(i: int) -> None:
            await webhooks.handle(*warm_async[i])

        await run_tasks(handle_warm, len(warm_async), concurrency)  # opens this loop's connections
        figures["async handle"] = percentiles(await run_tasks(handle, events, concurrency, rate))
        if store is not None:

            async def claim_complete(i: int) -> None:
                key = f"{run}-a-{i}"
                await store.aclaim(key, "bench")
                await store.acomplete(key, "bench")

            figures["async store"] = percentiles(
                await run_tasks(claim_complete, events, concurrency, rate)
            )
            await store.aclose()

    asyncio.run(async_figures())
    if store is not None:
        store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="threads / tasks")
    parser.add_argument(
        "--rate", type=float, default=400.0, help="events per second of the paced load"
    )
    parser.add_argument(
        "--load", choices=["paced", "saturated", "both"], default="both", help="which loads to run"
    )
    parser.add_argument(
        "--stores", default="memory,sqlite,redis,postgres", help="comma-separated stores to run"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:10]
    prefix = f"commet_webhooks_bench:{run}:"
    schema = f"commet_webhooks_bench_{run}"
    with tempfile.TemporaryDirectory() as folder:
        stores: dict[str, Callable[[], IdempotencyStore | None]] = {
            "none": lambda: None,
            "memory": MemoryStore,
            "sqlite": lambda: SQLiteStore(Path(folder) / "keys.db"),
            "redis": lambda: RedisStore(args.redis_url, prefix=prefix),
            "postgres": lambda: PostgresStore(args.postgres_dsn, schema=schema),
        }
        wanted = {"none", *args.stores.split(",")}
        stores = {name: make for name, make in stores.items() if name in wanted}
        loads: dict[str, float | None] = {}
        if args.load in ("paced", "both"):
            loads[f"paced {args.rate:g}/s"] = args.rate
        if args.load in ("saturated", "both"):
            loads["saturated"] = None
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
        try:
            for load, rate in loads.items():
                results = {
                    name: measure(make(), args.events, args.concurrency, rate)
                    for name, make in stores.items()
                }
                report(load, results, args.events, args.concurrency)
        finally:
            cleanup(args.redis_url, prefix, args.postgres_dsn, schema)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


def cleanup(redis_url: str, prefix: str, dsn: str, schema: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for batch in batched(list(client.scan_iter(match=prefix + "*", count=1000)), 1000):
            client.delete(*batch)
    finally:
        client.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)
            )
        )


def batched(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def report(
    load: str, results: dict[str, dict[str, tuple[float, float]]], events: int, conc: int
) -> None:
    print(f"\n{load} load: {events} events per row, {conc} threads (sync) or tasks (async)")
    header = (
        f"{'store':<9} {'api':<5} {'claim+complete p50/p99':>23} {'handle p50/p99':>17} "
        f"{'handle p50 vs none':>19}  target p50"
    )
    print(header)
    print("-" * len(header))
    for name, figures in results.items():
        for api in ("sync", "async"):
            store = figures.get(f"{api} store")
            handle = figures[f"{api} handle"]
            baseline = results["none"][f"{api} handle"]
            store_cell = f"{store[0]:8.3f} / {store[1]:7.3f} ms" if store else "-"
            target = TARGET_P50_MS.get(name)
            verdict = ""
            if target is not None and store is not None:
                verdict = f"< {target:g} ms: {'met' if store[0] < target else 'MISSED'}"
            print(
                f"{name:<9} {api:<5} {store_cell:>23} {handle[0]:7.3f} / {handle[1]:7.3f} "
                f"{handle[0] / baseline[0]:18.2f}x  {verdict}"
            )


if __name__ == "__main__":
    main()
