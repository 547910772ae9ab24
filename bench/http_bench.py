"""Our FastAPI route and Flask blueprint against hand-written endpoints, over real HTTP.

Each framework runs in one server process (FastAPI under uvicorn, Flask under
gunicorn's threaded worker) that serves two routes side by side:

* ``/ours`` -- ``commet_webhooks.fastapi.webhook_router`` or
  ``commet_webhooks.flask.webhook_blueprint``
* ``/hand`` -- the endpoint a careful user writes by hand: read the body, HMAC-SHA256 it,
  compare in constant time, ``json.loads`` it, call the handler for its ``event``.

Both routes get the same signed bodies (every event type in turn) and the same
do-nothing handlers. The load generator is a small keep-alive HTTP/1.1 client on
asyncio in this process: a fixed number of requests over a fixed number of
connections, so it is bounded and light enough not to hide the server's cost. The
two routes alternate, round after round, in the same run; the figures are medians
over rounds and the ratios are ours / hand-written.

Run: ``.venv/bin/python bench/http_bench.py [--requests 3000] [--connections 16] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from flask import Flask, jsonify, request

from commet_webhooks import Webhooks
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.fastapi import webhook_router
from commet_webhooks.flask import webhook_blueprint
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_http_bench_0123456789abcdef"
ROUTES = ("hand", "ours")


# ------------------------------------------------------------------ the handlers


async def handle_async(event: Any) -> None:
    """The application's work, the same for both routes: none."""


def handle_sync(event: Any) -> None:
    """The application's work, the same for both routes: none."""


def our_webhooks(handler: Any) -> Webhooks:
    webhooks = Webhooks(SECRET)
    for name in EVENT_TYPES:
        webhooks.on(name)(handler)
    return webhooks


def verify_and_parse_by_hand(body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    """(status, parsed envelope or error answer): the hand-written verify + parse."""
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature):
        return 403, {"received": False, "error": "Invalid signature"}
    try:
        envelope = json.loads(body)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
            raise ValueError("not an envelope")
    except ValueError:
        return 400, {"received": False, "error": "Invalid payload"}
    return 200, envelope


# ------------------------------------------------------------------- the servers


def fastapi_app() -> Any:
    app = FastAPI()
    app.include_router(webhook_router(our_webhooks(handle_async), "/ours"))
    handlers = dict.fromkeys(EVENT_TYPES, handle_async)

    @app.post("/hand")
    async def hand(request: Request) -> JSONResponse:
        body = await request.body()
        status, envelope = verify_and_parse_by_hand(body, request.headers.get("x-commet-signature"))
        if status != 200:
            return JSONResponse(envelope, status_code=status)
        handler = handlers.get(envelope.get("event", ""))
        if handler is not None:
            await handler(envelope)
        return JSONResponse({"received": True})

    return app


def flask_app() -> Any:
    app = Flask(__name__)
    app.register_blueprint(webhook_blueprint(our_webhooks(handle_sync), "/ours"))
    handlers = dict.fromkeys(EVENT_TYPES, handle_sync)

    @app.post("/hand")
    def hand() -> Any:
        body = request.get_data()
        status, envelope = verify_and_parse_by_hand(body, request.headers.get("X-Commet-Signature"))
        if status != 200:
            return jsonify(envelope), status
        handler = handlers.get(envelope.get("event", ""))
        if handler is not None:
            handler(envelope)
        return jsonify({"received": True})

    return app


def serve(framework: str, port: int) -> None:
    """Run one framework's server in this process until terminated."""
    if framework == "fastapi":
        import uvicorn

        uvicorn.run(
            fastapi_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        return
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": "gthread",
                "threads": 4,
                "keepalive": 30,
                "loglevel": "warning",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return flask_app()

    Server().run()


# --------------------------------------------------------------- load generator


@dataclass
class Run:
    route: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter[int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")


def requests_for(route: str, port: int) -> list[bytes]:
    """One pre-built, signed request per event type, for ``/route``."""
    built = []
    for name in EVENT_TYPES:
        body, headers = signed_request(sample_event(name), SECRET)
        head = f"POST /{route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{key}: {value}\r\n" for key, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        built.append(head.encode("latin-1") + body)
    return built


async def _connection(
    port: int, requests: list[bytes], count: int, latencies: list[float], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - started)
            statuses[int(head[9:12])] += 1
    finally:
        writer.close()


async def load(route: str, port: int, total: int, connections: int) -> Run:
    """``total`` requests to ``/route`` over ``connections`` keep-alive connections."""
    requests = requests_for(route, port)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    share = [total // connections + (i < total % connections) for i in range(connections)]
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(_connection(port, requests, n, latencies, statuses) for n in share)),
        timeout=300,
    )
    return Run(route, total, time.perf_counter() - started, latencies, statuses)


# ------------------------------------------------------------------------ main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during startup")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not start within {timeout} s")


def bench(framework: str, args: argparse.Namespace) -> dict[str, list[Run]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", framework, str(port)])
    try:
        wait_for(port, process)
        for route in ROUTES:  # warm-up, not measured
            asyncio.run(load(route, port, min(500, args.requests), args.connections))
        runs: dict[str, list[Run]] = {route: [] for route in ROUTES}
        for round_no in range(args.rounds):
            order = ROUTES if round_no % 2 == 0 else ROUTES[::-1]
            for route in order:
                run = asyncio.run(load(route, port, args.requests, args.connections))
                if set(run.statuses) != {200}:
                    raise RuntimeError(f"/{route} answered {dict(run.statuses)}")
                runs[route].append(run)
        return runs
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def report(framework: str, runs: dict[str, list[Run]]) -> None:
    def median(route: str, value: Any) -> float:
        return statistics.median(value(run) for run in runs[route])

    print(f"\n## {framework}")
    print(f"{'route':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    figures = {}
    for route in ROUTES:
        rps = median(route, lambda r: r.rps)
        p50 = median(route, lambda r: r.percentile(0.50)) * 1e3
        p99 = median(route, lambda r: r.percentile(0.99)) * 1e3
        figures[route] = (rps, p99)
        label = "hand-written" if route == "hand" else "ours"
        print(f"{label:<14} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}")
    rps_ratio = figures["ours"][0] / figures["hand"][0]
    p99_ratio = figures["ours"][1] / figures["hand"][1]
    verdict = "ok" if rps_ratio >= 0.95 else "BELOW TARGET"
    print(
        f"ours / hand-written: req/s x{rps_ratio:.2f} (target >= 0.95: {verdict}), "
        f"p99 x{p99_ratio:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measured run")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--rounds", type=int, default=5, help="measured runs per route")
    parser.add_argument("--framework", choices=["fastapi", "flask"], action="append")
    parser.add_argument("--serve", nargs=2, metavar=("FRAMEWORK", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    print(
        f"python {sys.version.split()[0]}; {args.rounds} rounds x {args.requests} requests "
        f"per route over {args.connections} connections; medians over rounds"
    )
    for framework in args.framework or ["fastapi", "flask"]:
        report(framework, bench(framework, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
