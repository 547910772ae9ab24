"""``Webhooks(offload=...)`` with Celery on RabbitMQ, against the inline receiver, in one run.

Three measurements, each against a baseline measured in the same run:

1. **Answer time while handlers are slow.** Every handler takes 500 ms. The offloading
   receiver (one uvicorn process) is driven at a paced rate while Celery workers run the
   handlers; its answer time p50/p99 is what Commet sees. The inline receiver's answer
   time with the same handler is shown beside it (it is the handler's 500 ms).
2. **Receiver throughput.** A do-nothing handler; requests/s of the offloading receiver
   (verify, publish, wait for RabbitMQ's confirm) / requests/s of the inline receiver
   (verify, run the handler), saturated, rounds alternating.
3. **End to end.** Events/s from the first request until the workers have run every
   handler, with the Redis idempotency store on both sides, beside the inline receiver
   with the same store.

RabbitMQ (``--broker``, default ``amqp://guest:guest@127.0.0.1:5672//``) and Redis
(``--redis``) must be up. The run takes under a minute and removes its queue and keys.

Run: ``.venv/bin/python bench/offload_bench.py [--paced-rate 200] [--requests 3000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

SECRET = "whsec_offload_bench_0123456789"
HERE = Path(__file__).resolve().parent

# ------------------------------------------------------------------ the app (both sides)
# Configured by environment so that uvicorn and celery import the same module.

MODE = os.environ.get("OFFLOAD_BENCH_MODE", "offload")  # offload | inline
HANDLER_SECONDS = float(os.environ.get("OFFLOAD_BENCH_HANDLER_SECONDS", "0"))
USE_STORE = os.environ.get("OFFLOAD_BENCH_STORE", "") == "1"
BROKER = os.environ.get("OFFLOAD_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("OFFLOAD_BENCH_REDIS", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("OFFLOAD_BENCH_QUEUE", "commet_offload_bench")
PREFIX = os.environ.get("OFFLOAD_BENCH_PREFIX", "commet_offload_bench:")

if os.environ.get("OFFLOAD_BENCH_APP") == "1":
    import redis as _redis
    from celery import Celery

    from commet_webhooks import Webhooks
    from commet_webhooks.asgi import WebhookApp
    from commet_webhooks.celery import celery_offload
    from commet_webhooks.stores.redis import RedisStore

    counter = _redis.Redis.from_url(REDIS)

    def handler(event: Any) -> None:
        if HANDLER_SECONDS:
            time.sleep(HANDLER_SECONDS)
        if USE_STORE:
            counter.incr(PREFIX + "done")

    app = Celery("offload_bench", broker=BROKER)
    app.conf.update(
        worker_prefetch_multiplier=4, worker_hijack_root_logger=False, task_default_queue=QUEUE
    )
    offload = celery_offload(app, lambda: webhooks, queue=QUEUE) if MODE == "offload" else None
    webhooks = Webhooks(
        SECRET,
        idempotency_store=RedisStore(REDIS, prefix=PREFIX) if USE_STORE else None,
        offload=offload,
        on_payload=handler,
        handler_threads=64,
    )
    asgi = WebhookApp(webhooks)


# ------------------------------------------------------------------ load generation

_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")


def requests_for(port: int, count: int) -> list[bytes]:
    """``count`` distinct signed deliveries (distinct ids: the store must not dedupe them)."""
    from commet_webhooks.testing import sample_event, signed_request

    kinds = ["payment.received", "invoice.created", "subscription.activated", "payment.failed"]
    built = []
    for i in range(count):
        body, headers = signed_request(sample_event(kinds[i % len(kinds)]), SECRET)
        head = f"POST /webhooks/commet HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{key}: {value}\r\n" for key, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        built.append(head.encode("latin-1") + body)
    return built


async def _connection(
    port: int,
    requests: list[bytes],
    starts: list[float] | None,
    out: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i, request in enumerate(requests):
            if starts is not None:
                await asyncio.sleep(max(0.0, starts[i] - time.perf_counter()))
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            out.append(time.perf_counter() - started)
            statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def drive(
    port: int, requests: list[bytes], connections: int, rate: float | None
) -> tuple[float, list[float], Counter[int]]:
    """Send ``requests`` over ``connections``; paced at ``rate``/s, or as fast as answered."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    shares = [requests[i::connections] for i in range(connections)]
    t0 = time.perf_counter() + 0.05
    jobs = []
    for i, share in enumerate(shares):
        starts = (
            None if rate is None else [t0 + (k * connections + i) / rate for k in range(len(share))]
        )
        jobs.append(_connection(port, share, starts, latencies, statuses))
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=120)
    return time.perf_counter() - started, latencies, statuses


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    def __init__(self, run: str) -> None:
        self.run = run
        self.started: list[subprocess.Popen[bytes]] = []

    def env(self, mode: str, handler_seconds: float, store: bool) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "OFFLOAD_BENCH_APP": "1",
            "OFFLOAD_BENCH_MODE": mode,
            "OFFLOAD_BENCH_HANDLER_SECONDS": str(handler_seconds),
            "OFFLOAD_BENCH_STORE": "1" if store else "",
            "OFFLOAD_BENCH_QUEUE": QUEUE + "." + self.run,
            "OFFLOAD_BENCH_PREFIX": PREFIX + self.run + ":",
        }

    def receiver(self, mode: str, handler_seconds: float = 0, store: bool = False) -> int:
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", "offload_bench:asgi", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
        process = subprocess.Popen(args, cwd=HERE, env=self.env(mode, handler_seconds, store),
                                   start_new_session=True)  # fmt: skip
        self.started.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not start")

    def workers(
        self, handler_seconds: float, store: bool, concurrency: int
    ) -> subprocess.Popen[bytes]:
        celery = str(Path(sys.executable).parent / "celery")
        args = [celery, "-A", "offload_bench", "worker", "-Q", QUEUE + "." + self.run,
                "--pool", "threads", "--concurrency", str(concurrency), "--loglevel", "error",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        process = subprocess.Popen(args, cwd=HERE, env=self.env("offload", handler_seconds, store),
                                   start_new_session=True, stdout=subprocess.DEVNULL)  # fmt: skip
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def stop_all(self) -> None:
        for process in self.started:
            self.stop(process)


def purge(queue: str) -> None:
    import kombu

    with kombu.Connection(BROKER) as conn, contextlib.suppress(Exception):  # not declared yet
        conn.default_channel.queue_purge(queue)


def consumers(queue: str) -> int:
    import kombu

    with kombu.Connection(BROKER) as conn:
        try:
            return int(conn.default_channel.queue_declare(queue, passive=True).consumer_count)
        except Exception:
            return 0


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paced-rate", type=float, default=200.0)
    parser.add_argument("--paced-requests", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=3000, help="per throughput round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=1500, help="end-to-end events")
    parser.add_argument("--parts", default="1,2,3", help="which measurements, e.g. 2")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    run = uuid.uuid4().hex[:8]
    procs = Procs(run)
    queue = QUEUE + "." + run
    print(f"offload bench: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    try:
        # 1. answer time, handlers of 500 ms on workers
        if 1 in parts:
            answer_time(procs, queue, args)
        if 2 in parts:
            throughput(procs, queue, args)
        if 3 in parts:
            end_to_end(procs, queue, run, args)
    finally:
        procs.stop_all()
        cleanup(queue, run)
    return 0


def answer_time(procs: Procs, queue: str, args: argparse.Namespace) -> None:
    port = procs.receiver("offload", 0.5)
    procs.workers(0.5, False, 32)
    asyncio.run(drive(port, requests_for(port, 50), 4, None))  # warm the connections
    _, lat, st = asyncio.run(
        drive(port, requests_for(port, args.paced_requests), 8, args.paced_rate)
    )
    inline_port = procs.receiver("inline", 0.5)
    _, inline_lat, inline_st = asyncio.run(
        drive(inline_port, requests_for(inline_port, 64), 8, None)
    )
    print(
        f"\n1. answer time, each handler 500 ms, {args.paced_requests} requests paced at {args.paced_rate:.0f}/s"
    )
    print(
        f"   offload  p50 {pct(lat, 0.5):6.1f} ms  p99 {pct(lat, 0.99):6.1f} ms  statuses {dict(st)}  (target p99 <= 25 ms)"
    )
    print(
        f"   inline   p50 {pct(inline_lat, 0.5):6.1f} ms  p99 {pct(inline_lat, 0.99):6.1f} ms  statuses {dict(inline_st)}"
    )
    for process in procs.started:
        procs.stop(process)
    procs.started.clear()
    purge(queue)


def throughput(procs: Procs, queue: str, args: argparse.Namespace) -> None:
    """A do-nothing handler; no worker (the queue only fills, and is purged)."""
    ports = {"inline": procs.receiver("inline"), "offload": procs.receiver("offload")}
    for p in ports.values():
        asyncio.run(drive(p, requests_for(p, 200), 8, None))
    rps: dict[str, list[float]] = {"inline": [], "offload": []}
    p99s: dict[str, list[float]] = {"inline": [], "offload": []}
    for _ in range(args.rounds):
        for mode, p in ports.items():
            reqs = requests_for(p, args.requests)
            seconds, lat, st = asyncio.run(drive(p, reqs, args.connections, None))
            assert set(st) == {200}, st
            rps[mode].append(len(reqs) / seconds)
            p99s[mode].append(pct(lat, 0.99))
        purge(queue)
    ratio = statistics.median(rps["offload"]) / statistics.median(rps["inline"])
    print(
        f"\n2. receiver throughput, do-nothing handler, {args.requests} requests x {args.rounds} rounds, {args.connections} connections"
    )
    for mode in ("inline", "offload"):
        print(
            f"   {mode:8} {statistics.median(rps[mode]):7.0f} req/s (rounds {', '.join(f'{r:.0f}' for r in rps[mode])})  p99 {statistics.median(p99s[mode]):.1f} ms"
        )
    print(f"   offload / inline: {ratio:.2f}x  (target >= 0.80x)")
    for process in procs.started:
        procs.stop(process)
    procs.started.clear()
    purge(queue)


def end_to_end(procs: Procs, queue: str, run: str, args: argparse.Namespace) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    done_key = PREFIX + run + ":done"
    inline_port = procs.receiver("inline", 0, True)
    reqs = requests_for(inline_port, args.events)
    seconds, _, _ = asyncio.run(drive(inline_port, reqs, args.connections, None))
    inline_eps = args.events / seconds
    client.delete(done_key)
    port = procs.receiver("offload", 0, True)
    workers = procs.workers(0, True, 8)
    deadline = time.monotonic() + 60
    while consumers(queue) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    reqs = requests_for(port, args.events)
    started = time.perf_counter()
    seconds, _, _st = asyncio.run(drive(port, reqs, args.connections, None))
    while int(client.get(done_key) or 0) < args.events and time.perf_counter() - started < 60:
        time.sleep(0.01)
    total = time.perf_counter() - started
    done = int(client.get(done_key) or 0)
    print(f"\n3. end to end, Redis store, {args.events} events, one celery worker (threads x8)")
    print(
        f"   offload  receiver {args.events / seconds:7.0f} events/s; handlers done {done}/{args.events} after {total:.2f} s: {done / total:7.0f} events/s"
    )
    print(f"   inline   receiver with the same store and handler: {inline_eps:7.0f} events/s")
    print(f"   end to end offload / inline: {done / total / inline_eps:.2f}x")
    del workers


def cleanup(queue: str, run: str) -> None:
    try:
        import kombu
        import redis

        with kombu.Connection(BROKER) as conn:
            conn.default_channel.queue_delete(queue)
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{PREFIX}{run}:*", count=1000))
        if keys:
            client.delete(*keys)
    except Exception as exc:
        print(f"cleanup: {type(exc).__name__}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
