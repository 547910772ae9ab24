"""Emulator delivery throughput and retry timing accuracy, against real local servers.

Three measurements, each with a receiver in its own process on 127.0.0.1:

1. **Outbox drain**: N events are written to a fresh database with one endpoint, then
   the emulator starts on it and delivers the backlog; deliveries/s is measured at
   the receiver (first to last arrival). Baseline in the same run: bare
   ``httpx.AsyncClient`` senders with the same concurrency and pool layout (16 pools
   of 4 connections) POSTing the same signed bodies to the same receiver, i.e. the
   ceiling of the engine's HTTP layer here; the ratio is printed. One big pool of 64
   is shown too: it is why the engine splits its connections.
2. **End to end**: events POSTed to ``/api/emulator/events`` by concurrent clients
   while the engine delivers them.
3. **Retry timing**: E events to an endpoint that always answers 500, default schedule
   divided by ``--time-scale``; each gap between attempts is compared with its
   scheduled delay (error = actual - scheduled; never negative by design).

Run: ``.venv/bin/python bench/emulator_bench.py [--events 3000] [--time-scale 3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from commet_webhooks._samples import sample_envelope
from commet_webhooks.emulator import DEFAULT_RETRY_SCHEDULE
from commet_webhooks.emulator.storage import Storage
from commet_webhooks.testing import sample_data, signed_request

API_KEY = "ck_bench_emulator"
CONCURRENCY = 64


# ---------------------------------------------------------------------- receiver process


def receiver_main(port: int) -> None:
    """A minimal ASGI receiver: records arrivals; ``/fail`` paths answer 500."""
    import uvicorn

    arrivals: list[tuple[float, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        path, status, body = scope["path"], 200, b'{"received":true}'
        if scope["method"] == "POST":
            event_id = next(
                (v.decode() for k, v in scope["headers"] if k == b"x-commet-event-id"), ""
            )
            arrivals.append((time.time(), event_id))
            if path.startswith("/fail"):
                status, body = 500, b'{"received":false}'
        elif path == "/arrivals":
            body = json.dumps(arrivals).encode()
        elif path == "/reset":
            arrivals.clear()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")  # fmt: skip


# ---------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


@contextmanager
def process(args: list[str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(args)
    try:
        wait_http(ready_url)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=15)


@contextmanager
def receiver() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, __file__, "--receiver", str(port)], url + "/arrivals"):
        yield url


@contextmanager
def emulator(db: Path, time_scale: float, *, auto_disable: bool = True) -> Iterator[str]:
    port = free_port()
    disable = "" if auto_disable else ", auto_disable_after=None"
    code = (
        "import uvicorn; from commet_webhooks.emulator import create_app; "
        f"uvicorn.run(create_app(db_path={str(db)!r}, api_key={API_KEY!r}, "
        f"time_scale={time_scale}{disable}), host='127.0.0.1', port={port}, log_level='warning', "
        "access_log=False)"
    )
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-c", code], url + "/?refresh=0"):
        yield url


def arrivals(receiver_url: str) -> list[tuple[float, str]]:
    return [tuple(a) for a in httpx.get(receiver_url + "/arrivals", timeout=30).json()]  # type: ignore[misc]


def wait_arrivals(receiver_url: str, count: int, timeout: float = 300) -> list[tuple[float, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = arrivals(receiver_url)
        if len(seen) >= count:
            return seen
        time.sleep(0.2)
    raise RuntimeError(f"only {len(arrivals(receiver_url))} of {count} arrived in {timeout} s")


def rate(seen: list[tuple[float, str]]) -> float:
    times = sorted(t for t, _ in seen)
    return (len(times) - 1) / (times[-1] - times[0])


# ---------------------------------------------------------------------- measurements


def baseline(receiver_url: str, events: int, pools: int) -> float:
    """Bare httpx, CONCURRENCY connections split over ``pools`` clients: requests/s."""
    requests = [
        signed_request({"id": f"whev_{i:016x}", "event": "payment.failed",
                        "data": sample_data("payment.failed")}, "whsec_bench")
        for i in range(events)
    ]  # fmt: skip

    async def send_all() -> float:
        queue = iter(requests)
        limits = httpx.Limits(max_connections=CONCURRENCY // pools)
        clients = [httpx.AsyncClient(limits=limits, timeout=10) for _ in range(pools)]

        async def worker(client: httpx.AsyncClient) -> None:
            for body, headers in queue:
                await client.post(receiver_url + "/hook", content=body, headers=headers)

        start = time.perf_counter()
        await asyncio.gather(*(worker(clients[i % pools]) for i in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
        for client in clients:
            await client.aclose()
        return events / elapsed

    httpx.get(receiver_url + "/reset", timeout=30)
    return asyncio.run(send_all())


def outbox_drain(receiver_url: str, events: int, workdir: Path) -> float:
    db_path = workdir / "drain.db"
    store = Storage(str(db_path))
    endpoint = store.endpoints.create(receiver_url + "/hook", [])
    with store.db.transaction():
        for _ in range(events):
            store.events.record(sample_envelope("payment.failed"), [endpoint])
    store.close()
    httpx.get(receiver_url + "/reset", timeout=30)
    with emulator(db_path, 1.0):
        return rate(wait_arrivals(receiver_url, events))


def end_to_end(receiver_url: str, events: int, workdir: Path) -> tuple[float, float]:
    """(events accepted per s by the API, deliveries per s) with both running at once."""
    httpx.get(receiver_url + "/reset", timeout=30)
    with emulator(workdir / "e2e.db", 1.0) as url:
        headers = {"x-api-key": API_KEY}
        httpx.post(url + "/api/webhooks", json={"url": receiver_url + "/hook"},
                   headers=headers, timeout=30).raise_for_status()  # fmt: skip

        async def post_all() -> float:
            counter = iter(range(events))
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

                async def worker() -> None:
                    for _ in counter:
                        response = await client.post(
                            "/api/emulator/events", json={"event": "invoice.created"}
                        )
                        response.raise_for_status()

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(16)))
                return events / (time.perf_counter() - start)

        accepted = asyncio.run(post_all())
        return accepted, rate(wait_arrivals(receiver_url, events))


def retry_timing(receiver_url: str, events: int, time_scale: float, workdir: Path) -> list[float]:
    """Errors in ms of every gap between consecutive attempts of each event."""
    httpx.get(receiver_url + "/reset", timeout=30)
    attempts = len(DEFAULT_RETRY_SCHEDULE) + 1
    # every event fails on purpose: auto-disable (3 failed events) would cut the run short
    with emulator(workdir / "retry.db", time_scale, auto_disable=False) as url:
        headers = {"x-api-key": API_KEY}
        httpx.post(url + "/api/webhooks", json={"url": receiver_url + "/fail"},
                   headers=headers, timeout=30).raise_for_status()  # fmt: skip
        for _ in range(events):
            httpx.post(url + "/api/emulator/events", json={"event": "payment.failed"},
                       headers=headers, timeout=30).raise_for_status()  # fmt: skip
        budget = sum(DEFAULT_RETRY_SCHEDULE) / time_scale + 60
        seen = wait_arrivals(receiver_url, events * attempts, timeout=budget)
    by_event: dict[str, list[float]] = {}
    for at, event_id in seen:
        by_event.setdefault(event_id, []).append(at)
    errors = []
    for times in by_event.values():
        times.sort()
        for index, (earlier, later) in enumerate(itertools.pairwise(times)):
            errors.append((later - earlier - DEFAULT_RETRY_SCHEDULE[index] / time_scale) * 1000)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--retry-events", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=3000)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
        return

    print(f"emulator delivery benchmark  (cpus: {os.cpu_count()}, concurrency {CONCURRENCY})")
    with tempfile.TemporaryDirectory() as tmp, receiver() as receiver_url:
        workdir = Path(tmp)
        one_pool = baseline(receiver_url, args.events, pools=1)
        ceiling = baseline(receiver_url, args.events, pools=CONCURRENCY // 4)
        drained = outbox_drain(receiver_url, args.events, workdir)
        print(f"  bare httpx, one pool of {CONCURRENCY:<3}         {one_pool:8.0f} requests/s")
        print(f"  bare httpx, {CONCURRENCY // 4} pools of 4 (baseline) {ceiling:8.0f} requests/s")
        print(f"  emulator outbox drain              {drained:8.0f} deliveries/s"
              f"   ({drained / ceiling:.2f}x baseline; target >= 500/s)")  # fmt: skip
        accepted, delivered = end_to_end(receiver_url, args.events, workdir)
        print(f"  end to end: API accepts            {accepted:8.0f} events/s")
        print(f"              while delivering       {delivered:8.0f} deliveries/s")
        errors = retry_timing(receiver_url, args.retry_events, args.time_scale, workdir)
        errors.sort()
        print(
            f"  retry gaps vs schedule / {args.time_scale:g} ({len(errors)} gaps, "
            f"{args.retry_events} events):"
        )
        print(
            f"    error ms: min {errors[0]:.1f}  median {statistics.median(errors):.1f}  "
            f"p95 {errors[int(len(errors) * 0.95) - 1]:.1f}  max {errors[-1]:.1f}  "
            f"(negative = early: {sum(e < 0 for e in errors)})"
        )


if __name__ == "__main__":
    main()
