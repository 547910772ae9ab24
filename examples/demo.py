"""End-to-end demo: a local Commet delivers a subscription's life to a FastAPI receiver.

Run with ``scripts/demo``. Everything runs on 127.0.0.1 and nothing leaves the machine:

1. the Commet emulator starts on a temporary SQLite file, with a generated ``ck_`` key
   and a time scale that turns the one-minute first retry into a tenth of a second;
2. a sample receiver (FastAPI + ``commet_webhooks.fastapi.webhook_router``) starts, and
   its URL is registered with ``POST /api/webhooks``; the ``whsec_`` secret the
   emulator returns is the receiver's signing secret;
3. the lifecycle runs: customer -> subscription -> pay -> change plan -> failed renewal
   -> successful renewal (charging the invoice that failed) -> cancel. After each step
   the demo waits until every event Commet would send has been verified and dispatched
   to its typed handler;
4. the state is asked of the emulator's state API through ``commet_webhooks.Commet``
   after the payment and after the cancellation.

The dunning handler fails the first time it sees ``payment.failed`` (say, the email
service is down). The receiver opts into retries on handler errors, so it answers 500,
the emulator retries, and the handler runs to completion exactly once.

Exit status 0 only when every expected event was handled exactly once by the right
handler and every state answer was right.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from rich.console import Console
from rich.table import Table

from commet_webhooks import (
    Commet,
    InvoiceCreated,
    MemoryStore,
    PaymentFailed,
    PaymentReceived,
    SubscriptionActivated,
    SubscriptionCanceled,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    WebhookEvent,
    Webhooks,
)
from commet_webhooks.emulator import create_app
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.fastapi import webhook_router

HOST = "127.0.0.1"
TIME_SCALE = 600.0  # the 1 min first retry waits 0.1 s
STEP_TIMEOUT = 10.0  # seconds to wait for a step's deliveries
CUSTOMER = "user_demo"

console = Console(highlight=False, soft_wrap=True)
if not console.is_terminal:
    console.width = 120


class DemoFailure(Exception):
    """A check of the demo did not hold."""


# --------------------------------------------------------------------------- servers


class ServerThread:
    """A uvicorn server in a background thread, on a loopback socket bound up front.

    Binding first gives the port (and so the URL) before the app exists.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"

    @contextmanager
    def serving(self, app: Any, timeout: float = 20.0) -> Iterator[ServerThread]:
        """Serve ``app`` until the block exits; wait (bounded) until it accepts requests."""
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.sock]}, name=self.name, daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + timeout
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise DemoFailure(f"the {self.name} did not start")
                time.sleep(0.02)
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout)
            self.sock.close()


# --------------------------------------------------------------------------- receiver


@dataclass
class Handled:
    """One event a handler ran to completion for."""

    registered_for: str  # the event type the handler was registered for
    event: WebhookEvent


@dataclass
class Recorder:
    """What the receiver saw: delivery attempts (by event id) and completed handler runs."""

    attempts: dict[str, list[int]] = field(default_factory=dict)
    handled: list[Handled] = field(default_factory=list)
    failed_once: set[str] = field(default_factory=set)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def attempt(self, event_id: str, status: int) -> None:
        with self.lock:
            self.attempts.setdefault(event_id, []).append(status)

    def handler(self, name: str, *, fail_first: bool = False) -> Callable[[Any], Awaitable[None]]:
        """An async handler for ``name`` that records each completed run."""

        async def handle(event: WebhookEvent) -> None:
            if fail_first and event.id not in self.failed_once:
                self.failed_once.add(event.id or "")
                raise ConnectionError("email service unavailable (simulated)")
            with self.lock:
                self.handled.append(Handled(name, event))
                self.lock.notify_all()

        handle.__qualname__ = EVENT_TYPES[name].handler_keyword
        return handle

    def wait_for(self, start: int, names: list[str], timeout: float) -> list[Handled]:
        """Block until the events handled since ``start`` include ``names``; return them."""
        wanted = Counter(names)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                got = self.handled[start:]
                if not wanted - Counter(h.event.event for h in got):
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return got
                self.lock.wait(remaining)


def build_receiver(secret: str, recorder: Recorder) -> FastAPI:
    """The sample app: one typed handler per event type, mounted with the FastAPI adapter."""
    webhooks = Webhooks(
        webhook_secret=secret,
        idempotency_store=MemoryStore(),
        retry_on_handler_error=True,  # a failed handler answers 500, so Commet retries
    )
    for name in EVENT_TYPES:  # same as on_<event>=handler keywords, one per type
        webhooks.on(name)(recorder.handler(name, fail_first=name == "payment.failed"))
    app = FastAPI()
    app.include_router(webhook_router(webhooks))

    @app.middleware("http")
    async def count_attempts(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        event_id = request.headers.get("x-commet-event-id", "?")
        recorder.attempt(event_id, response.status_code)
        return response

    return app


# --------------------------------------------------------------------------- the run


def call_emulator(
    http: httpx.Client, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """Call the emulator's API; return ``data`` of its ``{"success", "data"}`` answer."""
    answer = http.request(method, path, json=body)
    try:
        payload = answer.json()
    except ValueError:
        payload = {"body": answer.text[:200]}
    if not answer.is_success or not payload.get("success"):
        raise DemoFailure(f"{method} {path} -> {answer.status_code} {payload}")
    return payload.get("data")


def _money(cents: int, currency: str = "USD") -> str:
    return f"{cents / 100:.2f} {currency}"


def describe(event: WebhookEvent) -> str:
    """One line of what a handler would act on, read from the typed ``data``."""
    if isinstance(event, SubscriptionCreated):
        return f"{event.data.plan_name} plan, status {event.data.status}"
    if isinstance(event, SubscriptionActivated):
        data = event.data
        return f"{data.invoice_number} paid {_money(data.invoice_total, data.invoice_currency)}"
    if isinstance(event, SubscriptionPlanChanged):
        return f"{event.data.previous_plan.name} -> {event.data.current_plan.name}"
    if isinstance(event, InvoiceCreated):
        return f"{event.data.invoice_number} {_money(event.data.total, event.data.currency)}"
    if isinstance(event, PaymentFailed):
        return f"{event.data.invoice_number} declined ({event.data.failure_code})"
    if isinstance(event, PaymentReceived):
        paid = _money(event.data.gross_amount, event.data.currency)
        return f"{event.data.invoice_number} paid {paid}"
    if isinstance(event, SubscriptionCanceled):
        return f"status {event.data.status}, reason {event.data.cancel_reason!r}"
    return ""


@dataclass
class Demo:
    emulator: httpx.Client
    commet: Commet
    recorder: Recorder
    problems: list[str] = field(default_factory=list)
    steps: list[tuple[str, list[Handled]]] = field(default_factory=list)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return call_emulator(self.emulator, method, path, body)

    def step(
        self, title: str, method: str, path: str, body: dict[str, Any] | None, expect: list[str]
    ) -> Any:
        """Run one lifecycle action and wait for its events to be handled."""
        start = len(self.recorder.handled)
        data = self.call(method, path, body)
        got = self.recorder.wait_for(start, expect, STEP_TIMEOUT)
        self.steps.append((title, got))
        names = [h.event.event for h in got]
        ok = Counter(names) == Counter(expect)
        mark = "[green]ok[/]" if ok else "[red]MISMATCH[/]"
        console.print(f"[bold]{title:<22}[/] {mark}  " + ", ".join(names or ["(nothing)"]))
        for handled in got:
            event = handled.event
            spec = EVENT_TYPES[handled.registered_for]
            right = handled.registered_for == event.event and type(event) is spec.event_class
            if not right:
                self.problems.append(
                    f"{event.event} reached the handler for {handled.registered_for}"
                )
            if event.data.customer_id != CUSTOMER:
                self.problems.append(f"{event.event} is about {event.data.customer_id}")
            console.print(
                f"    -> {spec.handler_keyword}({type(event).__name__})  {describe(event)}"
                f"  [dim]{event.id}[/]"
            )
        if not ok:
            self.problems.append(f"{title}: expected {expect}, handled {names}")
        return data

    def expect(self, condition: bool, description: str) -> None:
        console.print(
            f"    state: {description:<58} {'[green]ok[/]' if condition else '[red]NO[/]'}"
        )
        if not condition:
            self.problems.append(f"state check failed: {description}")


def run_lifecycle(demo: Demo) -> None:
    demo.call(
        "POST",
        "/api/emulator/customers",
        {"id": CUSTOMER, "name": "Ada", "email": "ada@example.com"},
    )
    console.print(f"[bold]{'customer':<22}[/] [green]ok[/]  {CUSTOMER} (no event)")
    sub = demo.step(
        "subscribe (Starter)",
        "POST",
        "/api/emulator/subscriptions",
        {"customerId": CUSTOMER, "planId": "plan_starter"},
        ["subscription.created"],
    )
    sub_path = f"/api/emulator/subscriptions/{sub['id']}"
    demo.step("pay", "POST", f"{sub_path}/pay", None, ["subscription.activated"])

    active = demo.commet.subscriptions.get(CUSTOMER).data
    demo.expect(active is not None and active.status == "active", "subscription is active")
    demo.expect(
        active is not None and active.plan is not None and active.plan.id == "plan_starter",
        "plan is Starter",
    )
    analytics = demo.commet.features.check(code="advanced_analytics", customer_id=CUSTOMER)
    demo.expect(
        analytics.data is not None and not analytics.data.allowed, "Starter: no advanced analytics"
    )

    demo.step(
        "change plan (Pro)",
        "POST",
        f"{sub_path}/change-plan",
        {"planId": "plan_pro"},
        ["subscription.plan_changed"],
    )
    analytics = demo.commet.features.check(code="advanced_analytics", customer_id=CUSTOMER)
    demo.expect(analytics.data is not None and analytics.data.allowed, "Pro: advanced analytics")
    demo.step(
        "renew (card declined)",
        "POST",
        f"{sub_path}/renew",
        {"fail": True},
        ["invoice.created", "payment.failed"],
    )
    demo.step(
        "renew (paid)",
        "POST",
        f"{sub_path}/renew",
        {"fail": False},
        ["payment.received"],  # the open invoice of the declined renewal is charged
    )
    demo.step(
        "cancel", "POST", f"{sub_path}/cancel", {"reason": "demo over"}, ["subscription.canceled"]
    )

    after = demo.commet.subscriptions.get(CUSTOMER).data
    demo.expect(after is None or not after.is_active, "no access after cancellation")
    analytics = demo.commet.features.check(code="advanced_analytics", customer_id=CUSTOMER)
    demo.expect(
        analytics.data is not None and not analytics.data.allowed, "advanced analytics revoked"
    )


def check_exactly_once(demo: Demo) -> None:
    """Every event handled once, and nothing extra arrives a moment later."""
    time.sleep(0.5)
    counts = Counter(h.event.id for h in demo.recorder.handled)
    for event_id, count in counts.items():
        if count != 1:
            demo.problems.append(f"event {event_id} was handled {count} times")
    expected = sum(len(got) for _, got in demo.steps)
    if len(demo.recorder.handled) != expected:
        demo.problems.append(f"{len(demo.recorder.handled)} events handled, expected {expected}")
    retried = [tries for tries in demo.recorder.attempts.values() if len(tries) > 1]
    if not any(tries[0] >= 500 and tries[-1] == 200 for tries in retried):
        demo.problems.append("the failed dunning handler was not retried to success")


def summary_table(recorder: Recorder) -> Table:
    table = Table(title="Deliveries", title_justify="left")
    table.add_column("event")
    table.add_column("typed class")
    table.add_column("attempts (status)")
    table.add_column("handled", justify="right")
    counts = Counter(h.event.id for h in recorder.handled)
    for handled in recorder.handled:
        event = handled.event
        tries = recorder.attempts.get(event.id or "?", [])
        table.add_row(
            event.event, type(event).__name__, " -> ".join(map(str, tries)), str(counts[event.id])
        )
    return table


def run_demo(recorder: Recorder, problems: list[str]) -> None:
    """Start both servers, register the endpoint, run the lifecycle; stop everything."""
    api_key = "ck_demo_" + secrets.token_hex(12)
    with tempfile.TemporaryDirectory(prefix="commet-demo-") as tmp:
        db_path = str(Path(tmp) / "emulator.db")
        emulator = ServerThread("emulator")
        receiver = ServerThread("receiver")
        receiver_url = f"{receiver.url}/webhooks/commet"
        emulator_app = create_app(db_path=db_path, api_key=api_key, time_scale=TIME_SCALE)
        with (
            closing(emulator.sock),
            closing(receiver.sock),
            emulator.serving(emulator_app),
            httpx.Client(base_url=emulator.url, headers={"x-api-key": api_key}) as http,
        ):
            console.print(
                f"[bold]Commet emulator[/] {emulator.url}  "
                f"[dim]SQLite {db_path}, retries x{TIME_SCALE:g} faster[/]"
            )
            # The receiver's signing secret is the one the emulator issues for its URL.
            endpoint = call_emulator(
                http, "POST", "/api/webhooks", {"url": receiver_url, "events": list(EVENT_TYPES)}
            )
            console.print(
                f"[bold]Endpoint[/] {endpoint['id']} -> {receiver_url}  "
                f"[dim]secret whsec_******** issued[/]"
            )
            app = build_receiver(endpoint["secret"], recorder)
            with (
                receiver.serving(app),
                Commet(api_key=api_key, base_url=emulator.url) as commet,
            ):
                console.print("[bold]Receiver[/] FastAPI + webhook_router\n")
                demo = Demo(http, commet, recorder, problems)
                run_lifecycle(demo)
                check_exactly_once(demo)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=(
            "End-to-end demo on 127.0.0.1: a local Commet emulator delivers a subscription's "
            "life to a FastAPI receiver; exits 0 when every event was verified and handled "
            "exactly once and every state check passed."
        )
    ).parse_args(argv)
    recorder = Recorder()
    problems: list[str] = []
    started = time.monotonic()
    try:
        run_demo(recorder, problems)
    except Exception as exc:  # reported below; the servers are already shut down
        problems.append(f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    console.print()
    console.print(summary_table(recorder))
    if problems:
        for problem in problems:
            console.print(f"[bold red]problem:[/] {problem}")
        console.print(f"[bold red]Demo FAILED[/] ({len(problems)} problem(s), {elapsed:.1f} s)")
        return 1
    console.print(
        f"[bold green]Demo OK:[/] {len(recorder.handled)} events delivered, verified and "
        f"handled exactly once; state checks passed ({elapsed:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
