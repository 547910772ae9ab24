"""Our HTTP adapters against Commet's documented recipes and bare servers, under ``wrk``.

Ten endpoints, each alone in its own server process, all driven in the same run:

ASGI, one uvicorn worker (uvloop, httptools):

* ``asgi-bare``      -- a bare ASGI app that reads the body and answers an empty 200: the limit
* ``asgi-bare-json`` -- the same, answering our ``{"received":true}`` (context: uvicorn
  writes a non-empty body with a second ``send`` syscall, which an empty body skips)
* ``asgi-floor``     -- the least any receiver that checks signatures does: find the
  signature header, ``hmac.new`` + ``compare_digest`` over the body, decode it untyped
  with msgspec (the fastest JSON decoder installed), answer ``{"received":true}``; no
  routing, no handler (context: no verifying receiver can beat it, so
  ``asgi-ours / asgi-bare`` is bounded by ``asgi-floor / asgi-bare``)
* ``asgi-ours``      -- ``commet_webhooks.asgi.WebhookApp``
* ``fastapi-recipe`` -- the webhook route of Commet's FastAPI guide (``commet-sdk`` 9.7.0):
  ``await request.body()``, ``Webhooks().verify_and_parse(raw_body=body.decode(), ...)``
  with the secret read from the environment, 401 on ``None``, branch on ``payload["event"]``,
  empty 200; mounted with ``app.include_router``
* ``fastapi-ours``   -- ``commet_webhooks.fastapi.webhook_router``, mounted the same way

WSGI, one gunicorn ``gthread`` worker with 4 threads:

* ``wsgi-bare``      -- a bare WSGI app that reads ``Content-Length`` bytes and answers 200
* ``wsgi-ours``      -- ``commet_webhooks.wsgi.WebhookApp``
* ``flask-recipe``   -- the webhook blueprint of Commet's Flask guide (``commet-sdk`` 9.7.0)
* ``flask-ours``     -- ``commet_webhooks.flask.webhook_blueprint``

Every endpoint gets the same signed ``payment.received`` body and has one do-nothing
handler per modelled event type (async for ASGI, plain for WSGI). Before measuring,
each endpoint is checked to answer 200 to the signed body and to refuse a forged one.

The load generator is ``wrk`` (the Debian package; installed with apt-get when
missing and this runs as root): one thread, ``--connections`` keep-alive connections,
``--duration`` seconds per run. The machine is usually shared, so the routes alternate
in many short rounds (the order is reversed every other round) and each ratio is the
median over rounds of the ratio measured *within* a round, where both routes met the
same background load. The server's CPU time per request (user + system, from /proc,
gunicorn's worker included) is reported beside it: it depends much less on what else
the machine is doing, and its inverse ratio is the throughput ratio on an idle core.

Run: ``.venv/bin/python bench/http_bench.py [--rounds 4] [--duration 1] [--group asgi]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import Request  # module level: the recipe's annotation is resolved from here

SECRET = "whsec_http_bench_0123456789abcdef"
os.environ.setdefault("COMMET_WEBHOOK_SECRET", SECRET)  # the recipes read it per request
PATH = "/webhooks/commet"

GROUPS = {
    "asgi": (
        "asgi-bare",
        "asgi-bare-json",
        "asgi-floor",
        "asgi-ours",
        "fastapi-recipe",
        "fastapi-ours",
    ),
    "wsgi": ("wsgi-bare", "wsgi-ours", "flask-recipe", "flask-ours"),
}
# (numerator, denominator, target): the ratios the issue asks for, and context.
RATIOS = (
    ("fastapi-ours", "fastapi-recipe", 1.05),
    ("asgi-ours", "asgi-bare", 0.75),
    ("asgi-ours", "asgi-bare-json", None),
    ("asgi-floor", "asgi-bare", None),
    ("asgi-ours", "asgi-floor", None),
    ("fastapi-ours", "asgi-bare", None),
    ("fastapi-recipe", "asgi-bare", None),
    ("flask-ours", "flask-recipe", 1.05),
    ("wsgi-ours", "wsgi-bare", None),
    ("flask-ours", "wsgi-bare", None),
    ("flask-recipe", "wsgi-bare", None),
)


# ------------------------------------------------------------------ the handlers


async def handle_async(event: Any) -> None:
    """The application's work, the same for every route: none."""


def handle_sync(event: Any) -> None:
    """The application's work, the same for every route: none."""


def event_names() -> list[str]:
    from commet_webhooks.events import EVENT_TYPES

    return list(EVENT_TYPES)


def our_webhooks(handler: Any) -> Any:
    from commet_webhooks import Webhooks

    webhooks = Webhooks(SECRET)
    for name in event_names():
        webhooks.on(name)(handler)
    return webhooks


# ------------------------------------------------------------------- the apps


def asgi_bare() -> Any:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    end = {"type": "http.response.body", "body": b""}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(start)
        await send(end)

    return app


def asgi_bare_json() -> Any:
    """The bare app answering the bytes ours answers: the cost of a non-empty body."""
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")],
    }
    end = {"type": "http.response.body", "body": b'{"received":true}'}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(start)
        await send(end)

    return app


def asgi_floor() -> Any:
    """Signature check and an untyped parse, nothing else: the floor of a verifying receiver."""
    import hashlib
    import hmac

    import msgspec

    key = SECRET.encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")],
    }
    end = {"type": "http.response.body", "body": b'{"received":true}'}
    refused = {"type": "http.response.start", "status": 403, "headers": [(b"content-length", b"0")]}
    empty = {"type": "http.response.body", "body": b""}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        signature = b""
        for name, value in scope["headers"]:
            if name == b"x-commet-signature":
                signature = value
        parts, more = [], True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(parts)
        expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, signature):
            await send(refused)
            await send(empty)
            return
        msgspec.json.decode(body)
        await send(start)
        await send(end)

    return app


def asgi_ours() -> Any:
    from commet_webhooks.asgi import WebhookApp

    return WebhookApp(our_webhooks(handle_async))


def fastapi_recipe() -> Any:
    """Commet's FastAPI guide, step 7, with one handler per event type."""
    from commet import Webhooks as SdkWebhooks
    from fastapi import APIRouter, FastAPI, Response

    router = APIRouter()
    webhooks = SdkWebhooks()
    handlers = dict.fromkeys(event_names(), handle_async)

    @router.post(PATH)
    async def handle_webhook(request: Request):  # type: ignore[no-untyped-def]  # as documented
        raw_body = await request.body()
        payload = webhooks.verify_and_parse(
            raw_body=raw_body.decode(),
            signature=request.headers.get("x-commet-signature"),
            secret=os.environ["COMMET_WEBHOOK_SECRET"],
        )
        if payload is None:
            return Response(status_code=401)
        handler = handlers.get(payload["event"])
        if handler is not None:
            await handler(payload)
        return Response(status_code=200)

    app = FastAPI()
    app.include_router(router)
    return app


def fastapi_ours() -> Any:
    from fastapi import FastAPI

    from commet_webhooks.fastapi import webhook_router

    app = FastAPI()
    app.include_router(webhook_router(our_webhooks(handle_async)))
    return app


def wsgi_bare() -> Any:
    def app(environ: Any, start_response: Any) -> Any:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    return app


def wsgi_ours() -> Any:
    from commet_webhooks.wsgi import WebhookApp

    return WebhookApp(our_webhooks(handle_sync))


def flask_recipe() -> Any:
    """Commet's Flask guide, step 7, with one handler per event type."""
    from commet import Webhooks as SdkWebhooks
    from flask import Blueprint, Flask, request

    webhooks_bp = Blueprint("webhooks", __name__)
    webhooks = SdkWebhooks()
    handlers = dict.fromkeys(event_names(), handle_sync)

    @webhooks_bp.route(PATH, methods=["POST"])
    def handle_webhook():  # type: ignore[no-untyped-def]  # as documented
        payload = webhooks.verify_and_parse(
            raw_body=request.get_data(as_text=True),
            signature=request.headers.get("x-commet-signature"),
            secret=os.environ["COMMET_WEBHOOK_SECRET"],
        )
        if payload is None:
            return "Invalid signature", 401
        handler = handlers.get(payload["event"])
        if handler is not None:
            handler(payload)
        return "", 200

    app = Flask(__name__)
    app.register_blueprint(webhooks_bp)
    return app


def flask_ours() -> Any:
    from flask import Flask

    from commet_webhooks.flask import webhook_blueprint

    app = Flask(__name__)
    app.register_blueprint(webhook_blueprint(our_webhooks(handle_sync)))
    return app


APPS = {
    "asgi-bare": asgi_bare,
    "asgi-bare-json": asgi_bare_json,
    "asgi-floor": asgi_floor,
    "asgi-ours": asgi_ours,
    "fastapi-recipe": fastapi_recipe,
    "fastapi-ours": fastapi_ours,
    "wsgi-bare": wsgi_bare,
    "wsgi-ours": wsgi_ours,
    "flask-recipe": flask_recipe,
    "flask-ours": flask_ours,
}


def serve(route: str, port: int) -> None:
    """Run one endpoint's server in this process until terminated."""
    app = APPS[route]()
    if route.startswith(("asgi", "fastapi")):
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            log_level="warning",
            access_log=False,
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
            return app

    Server().run()


# --------------------------------------------------------------- load generator


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is missing: install it (apt-get install wrk) and run again")


def signed_body() -> tuple[bytes, dict[str, str]]:
    from commet_webhooks.testing import sample_event, signed_request

    return signed_request(sample_event("payment.received"), SECRET)


def wrk_script(body: bytes, headers: dict[str, str]) -> str:
    """A Lua script that makes every request the same signed POST."""

    def lua(text: str) -> str:
        return '"' + "".join(f"\\{b:03d}" for b in text.encode("latin-1")) + '"'

    lines = ['wrk.method = "POST"', f"wrk.body = {lua(body.decode('latin-1'))}"]
    lines += [f"wrk.headers[{lua(k)}] = {lua(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_BAD = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_COUNT = re.compile(r"(\d+) requests in")


def run_wrk(wrk: str, script: str, port: int, args: argparse.Namespace) -> tuple[float, int]:
    """(requests per second, requests answered) of one wrk run."""
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "-s",
            script,
            f"http://127.0.0.1:{port}{PATH}",
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 30,
        check=True,
    ).stdout
    bad = _BAD.search(out)
    if bad:
        raise RuntimeError(f"non-2xx answers during the run:\n{out}")
    rps, count = _RPS.search(out), _COUNT.search(out)
    if rps is None or count is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(rps.group(1)), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (gunicorn's worker)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        total += sum(cpu_seconds(int(child)) for child in children.read_text().split())
    return total


# ------------------------------------------------------------------------ main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("a server exited during startup")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"a server did not start within {timeout} s")


def check(route: str, port: int, body: bytes, headers: dict[str, str]) -> None:
    """The endpoint answers 200 to the signed body and refuses a forged signature."""

    def post(signature: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{PATH}",
            data=body,
            headers={**headers, "X-Commet-Signature": signature},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    ok, forged = post(headers["X-Commet-Signature"]), post("0" * 64)
    if ok != 200 or ("-bare" not in route and forged < 400):
        raise RuntimeError(f"{route}: signed body answered {ok}, forged signature {forged}")


Results = dict[str, list[tuple[float, float]]]
"""Per route, per round: (requests per second, server CPU microseconds per request)."""


def bench(args: argparse.Namespace) -> Results:
    wrk = ensure_wrk()
    body, headers = signed_body()
    routes = [route for group in args.group for route in GROUPS[group]]
    with tempfile.TemporaryDirectory() as tmp:
        script = str(Path(tmp) / "post.lua")
        Path(script).write_text(wrk_script(body, headers))
        ports = {route: free_port() for route in routes}
        processes = {
            route: subprocess.Popen([sys.executable, __file__, "--serve", route, str(port)])
            for route, port in ports.items()
        }
        try:
            for route, port in ports.items():
                wait_for(port, processes[route])
                check(route, port, body, headers)
            warm = argparse.Namespace(**{**vars(args), "duration": 1})
            for route in routes:
                run_wrk(wrk, script, ports[route], warm)
            results: Results = {route: [] for route in routes}
            for round_no in range(args.rounds):
                order = routes if round_no % 2 == 0 else routes[::-1]
                for route in order:
                    before = cpu_seconds(processes[route].pid)
                    rps, count = run_wrk(wrk, script, ports[route], args)
                    used = cpu_seconds(processes[route].pid) - before
                    results[route].append((rps, used / max(count, 1) * 1e6))
            return results
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


def report(results: Results) -> None:
    print(f"\n{'route':<16} {'req/s':>8} {'[min-max]':>15} {'server CPU us/req':>18}")
    for route, runs in results.items():
        rps = [r for r, _ in runs]
        cpu = statistics.median(c for _, c in runs)
        spread = f"[{min(rps):.0f}-{max(rps):.0f}]"
        print(f"{route:<16} {statistics.median(rps):>8.0f} {spread:>15} {cpu:>18.1f}")
    print(
        "\nratios: req/s = median over rounds of the ratio within each round [min-max];"
        "\n        CPU = the inverse ratio of server CPU time per request (medians)"
    )
    for top, bottom, target in RATIOS:
        if top not in results or bottom not in results:
            continue
        ratios = [a[0] / b[0] for a, b in zip(results[top], results[bottom], strict=True)]
        cpu = statistics.median(c for _, c in results[bottom]) / statistics.median(
            c for _, c in results[top]
        )
        verdict = ""
        if target is not None:
            verdict = f"  target >= {target}: " + (
                "ok" if statistics.median(ratios) >= target else "MISSED"
            )
        print(
            f"{top + ' / ' + bottom:<34} req/s x{statistics.median(ratios):.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}]  CPU x{cpu:.2f}{verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="measured runs per route")
    parser.add_argument("--duration", type=int, default=1, help="whole seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--group", choices=sorted(GROUPS), action="append")
    parser.add_argument("--serve", nargs=2, metavar=("ROUTE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    args.group = args.group or ["asgi", "wsgi"]
    load = os.getloadavg()
    print(
        f"{date.today()}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f}; wrk -t1 -c{args.connections}; {args.rounds} rounds x "
        f"{args.duration} s per route, alternating"
    )
    report(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
