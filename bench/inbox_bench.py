"""Hot-path cost of the inbox over the plain idempotency store, at a paced 400 events/s.

For SQLite and PostgreSQL this measures, with 8 workers (threads for the sync API,
asyncio tasks for the async one) that together start ``--rate`` fresh events per
second:

* ``store``: the store's own work per event — ``claim`` + ``complete`` for the plain
  store, ``claim_event`` (which writes the body and envelope) + ``complete`` for the
  inbox;
* ``handle``: a whole ``Webhooks.handle_sync`` / ``handle`` per event with that store;
* ``serial store``: the store's work with one caller, back to back (no pacing, no
  queueing): what the statements themselves cost.

Plain store and inbox run interleaved, event by event (even events to the plain store,
odd ones to the inbox, both paced together at ``--rate``), so both meet the same
background load on a shared machine. The ratio column is the inbox's p50 over the
plain store's p50 for the same backend, row and API; the target is <= 1.3x.

Run (PostgreSQL with a ``test`` database must be up):
``.venv/bin/python bench/inbox_bench.py [--events 1000] [--api sync,async]``.
Everything the run writes (temporary SQLite files, a PostgreSQL schema) is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from stores_bench import percentiles, run_tasks, run_threads

from commet_webhooks import Webhooks
from commet_webhooks._admission import Admitted, admit
from commet_webhooks._signing import SecretKeys
from commet_webhooks.inbox.postgres import PostgresInbox
from commet_webhooks.inbox.sqlite import SQLiteInbox
from commet_webhooks.stores import IdempotencyStore
from commet_webhooks.stores.postgres import PostgresStore
from commet_webhooks.stores.sqlite import SQLiteStore
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_bench_secret_0123456789abcdef"
TARGET_RATIO = 1.3


def noop(event: object) -> None:
    return None


def deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    return [signed_request(sample_event("payment.received"), SECRET) for _ in range(count)]


def admitted(count: int) -> list[Admitted]:
    keys = SecretKeys(SECRET)
    out = []
    for body, headers in deliveries(count):
        result = admit(body, headers, keys, 1_048_576)
        assert isinstance(result, Admitted)
        out.append(result)
    return out


def paced_threads(
    work: Callable[[int], object], count: int, concurrency: int, rate: float
) -> list[tuple[int, float]]:
    """``work(i)`` for every i on ``concurrency`` threads, ``rate`` starts per second."""
    samples: list[tuple[int, float]] = []
    start = time.perf_counter() + 0.05

    def worker(first: int) -> list[tuple[int, float]]:
        local = []
        for i in range(first, count, concurrency):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            began = time.perf_counter()
            work(i)
            local.append((i, time.perf_counter() - began))
        return local

    with ThreadPoolExecutor(concurrency) as pool:
        for local in pool.map(worker, range(concurrency)):
            samples.extend(local)
    return samples


async def paced_tasks(
    work: Callable[[int], Any], count: int, concurrency: int, rate: float
) -> list[tuple[int, float]]:
    samples: list[tuple[int, float]] = []
    start = time.perf_counter() + 0.05

    async def worker(first: int) -> None:
        for i in range(first, count, concurrency):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            began = time.perf_counter()
            await work(i)
            samples.append((i, time.perf_counter() - began))

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return samples


def split(samples: list[tuple[int, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """(plain p50/p99, inbox p50/p99): even indexes went to the plain store."""
    plain = [s for i, s in samples if i % 2 == 0]
    inbox = [s for i, s in samples if i % 2 == 1]
    return percentiles(plain), percentiles(inbox)


def measure(
    plain: IdempotencyStore,
    inbox: Any,
    events: int,
    concurrency: int,
    rate: float,
    apis: list[str],
) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Plain store and inbox interleaved event by event (even: plain, odd: inbox), so
    both meet the same background load; per row, their (p50, p99)s."""
    stores = (plain, inbox)
    hooks = [Webhooks(SECRET, on_payment_received=noop, idempotency_store=s) for s in stores]
    figures: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
    warm = deliveries(concurrency * 8)
    for webhooks in hooks:
        run_threads(lambda i, w=webhooks: w.handle_sync(*warm[i]), len(warm), concurrency)

    if "sync" in apis:
        serial_items = admitted(events)

        def serial_ops(i: int) -> None:
            item = serial_items[i]
            key = item.event.id or ""
            if i % 2:
                inbox.claim_event(key, "bench", item)
            else:
                plain.claim(key, "bench")
            stores[i % 2].complete(key, "bench")

        # One caller, back to back: the statements' own cost, without queueing.
        figures["serial store"] = split(paced_threads(serial_ops, events, 1, 1e9))
        items = admitted(events)

        def store_ops(i: int) -> None:
            item = items[i]
            key = item.event.id or ""
            if i % 2:
                inbox.claim_event(key, "bench", item)
            else:
                plain.claim(key, "bench")
            stores[i % 2].complete(key, "bench")

        figures["sync store"] = split(paced_threads(store_ops, events, concurrency, rate))
        requests = deliveries(events)
        figures["sync handle"] = split(
            paced_threads(
                lambda i: hooks[i % 2].handle_sync(*requests[i]), events, concurrency, rate
            )
        )

    if "async" in apis:

        async def async_figures() -> None:
            items = admitted(events)
            requests = deliveries(events)
            warm_async = deliveries(concurrency * 8)
            for webhooks in hooks:

                async def warm_one(i: int, w: Webhooks = webhooks) -> None:
                    await w.handle(*warm_async[i])

                await run_tasks(warm_one, len(warm_async), concurrency)

            async def store_ops(i: int) -> None:
                item = items[i]
                key = item.event.id or ""
                if i % 2:
                    await inbox.aclaim_event(key, "bench", item)
                else:
                    await plain.aclaim(key, "bench")
                await stores[i % 2].acomplete(key, "bench")

            async def handle(i: int) -> None:
                await hooks[i % 2].handle(*requests[i])

            figures["async store"] = split(await paced_tasks(store_ops, events, concurrency, rate))
            figures["async handle"] = split(await paced_tasks(handle, events, concurrency, rate))
            for store in stores:
                await store.aclose()

        asyncio.run(async_figures())
    for store in stores:
        store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="threads / tasks")
    parser.add_argument("--rate", type=float, default=400.0, help="events per second")
    parser.add_argument("--api", default="sync,async", help="sync, async or both")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    apis = args.api.split(",")
    run = uuid.uuid4().hex[:10]
    schema = f"commet_inbox_bench_{run}"

    with tempfile.TemporaryDirectory() as folder:
        makers: dict[str, Callable[[], tuple[IdempotencyStore, Any]]] = {
            "sqlite": lambda: (
                SQLiteStore(Path(folder) / "keys.db"),
                SQLiteInbox(Path(folder) / "inbox.db"),
            ),
            "postgres": lambda: (
                PostgresStore(args.postgres_dsn, schema=schema),
                PostgresInbox(args.postgres_dsn, schema=schema),
            ),
        }
        results: dict[str, dict[str, tuple[tuple[float, float], tuple[float, float]]]] = {}
        try:
            for backend, make in makers.items():
                if backend in args.backends.split(","):
                    results[backend] = measure(
                        *make(), args.events, args.concurrency, args.rate, apis
                    )
        finally:
            if "postgres" in args.backends:
                with psycopg.connect(args.postgres_dsn, autocommit=True) as conn:
                    conn.execute(
                        psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                            psycopg.sql.Identifier(schema)
                        )
                    )

    load = os.getloadavg()[0]
    print(
        f"paced {args.rate:g}/s, {args.events} events per row, {args.concurrency} workers; "
        f"load average {load:.2f}"
    )
    print(f"{'backend':9} {'row':13} {'plain p50/p99 ms':>20} {'inbox p50/p99 ms':>20} "
          f"{'ratio':>7}  target")  # fmt: skip
    print("-" * 82)
    for backend, rows in results.items():
        for row, ((p50, p99), (i50, i99)) in rows.items():
            ratio = i50 / p50
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            print(
                f"{backend:9} {row:13} {p50:9.3f} / {p99:7.3f} {i50:9.3f} / {i99:7.3f} "
                f"{ratio:6.2f}x  <= {TARGET_RATIO}x: {verdict}"
            )


if __name__ == "__main__":
    main()
