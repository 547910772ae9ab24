"""Slow sync handlers under load: are 200 concurrent deliveries answered within Commet's 10 s?

A receiver under uvicorn (one worker) with ``SQLiteStore`` and a sync handler that
sleeps 1 s gets 200 concurrent deliveries. Reported: answer times (p50, max), how many
answered within Commet's 10-second timeout, and how many times the handlers ran
(must be 200: each once). Run with several ``handler_threads`` sizes; the baseline is
the same load with an async handler that sleeps 1 s, in the same run.

Also: the per-delivery cost of the lease-renewal machinery for a do-nothing handler
(renewal on vs a store that cannot renew), in process.

Run: ``.venv/bin/python bench/handlers_bench.py``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from commet_webhooks import SQLiteStore, Webhooks
from commet_webhooks.stores import MemoryStore
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_handlers_bench"
COMMET_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(port: int, db: str, threads: int, kind: str, counter: str) -> None:
    import uvicorn

    from commet_webhooks.asgi import WebhookApp

    def record() -> None:
        with open(counter, "a") as out:
            out.write("x")

    def sync_handler(event: Any) -> None:
        time.sleep(1.0)
        record()

    async def async_handler(event: Any) -> None:
        await asyncio.sleep(1.0)
        record()

    webhooks = Webhooks(
        SECRET,
        idempotency_store=SQLiteStore(db),
        handler_threads=threads,
        on_payment_failed=sync_handler if kind == "sync" else async_handler,
    )
    uvicorn.run(WebhookApp(webhooks), host="127.0.0.1", port=port, log_level="warning")


async def deliver(url: str, n: int) -> list[float]:
    requests = [signed_request(sample_event("payment.failed"), SECRET) for _ in range(n)]
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one(body: bytes, headers: dict[str, str]) -> float:
            start = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 200, response.text
            return time.perf_counter() - start

        return list(await asyncio.gather(*(one(b, h) for b, h in requests)))


def run_load(kind: str, threads: int, n: int) -> tuple[list[float], int]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        db, counter = str(Path(folder) / "keys.db"), str(Path(folder) / "runs")
        Path(counter).touch()
        proc = multiprocessing.get_context("spawn").Process(
            target=serve, args=(port, db, threads, kind, counter), daemon=True
        )
        proc.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            times = asyncio.run(deliver(f"http://127.0.0.1:{port}/", n))
            runs = len(Path(counter).read_text())
        finally:
            proc.terminate()
            proc.join(5)
    return times, runs


def renewal_overhead(rounds: int = 8, calls: int = 3000) -> tuple[float, float]:
    """µs per handle_sync with a do-nothing handler: a store that renews vs one that cannot.

    The two alternate, round after round, and each keeps its best round (the least
    disturbed by other load on a shared machine).
    """

    class NoRenew(MemoryStore):
        renew = None  # type: ignore[assignment]  # as if written against the old protocol

    requests = [signed_request(sample_event("payment.failed"), SECRET) for _ in range(calls)]

    def one_round(store_class: type[MemoryStore]) -> float:
        webhooks = Webhooks(
            SECRET, idempotency_store=store_class(), on_payment_failed=lambda e: None
        )
        start = time.perf_counter()
        for body, headers in requests:
            webhooks.handle_sync(body, headers)
        return (time.perf_counter() - start) / calls * 1e6

    best = {MemoryStore: float("inf"), NoRenew: float("inf")}
    for _ in range(rounds):
        for store_class in best:
            best[store_class] = min(best[store_class], one_round(store_class))
    return best[MemoryStore], best[NoRenew]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.deliveries} concurrent deliveries, handler sleeps 1 s, SQLiteStore, uvicorn")
    print(f"{'handler':<8}{'threads':>8}{'p50 s':>9}{'max s':>9}{'<=10 s':>9}{'runs':>7}")
    for kind, threads in [("async", 32), ("sync", 32), ("sync", 64)]:
        times, runs = run_load(kind, threads, args.deliveries)
        within = sum(t <= COMMET_TIMEOUT for t in times)
        print(
            f"{kind:<8}{threads:>8}{statistics.median(times):>9.2f}{max(times):>9.2f}"
            f"{within:>6}/{len(times):<3}{runs:>6}"
        )
    renewing, plain = renewal_overhead()
    print(f"\nhandle_sync + MemoryStore, do-nothing handler: renewal {renewing:.2f} us, "
          f"without {plain:.2f} us -> {renewing / plain:.2f}x")


if __name__ == "__main__":
    main()
