"""End-to-end demo: a year of a subscription on the test clock, delivered to a receiver.

Run with ``scripts/demo``. Everything runs on 127.0.0.1 and nothing leaves the machine:

1. the Commet emulator starts on a temporary SQLite file, with a generated ``ck_`` key
   and a time scale that turns an hour of the retry schedule into a few milliseconds;
2. a sample receiver (FastAPI + ``commet_webhooks.fastapi.webhook_router``, one typed
   handler per event type) starts, and its URL is registered with
   ``POST /api/v1/webhooks``; the ``secretKey`` the emulator returns is its secret;
3. a year goes by on the test clock: a trial, its conversion, monthly renewals, a
   declined renewal with dunning and recovery, usage past the plan's quota, a
   downgrade, a pause and its resume, a cancellation at the period's end. After each
   step the demo waits until every event the emulator emitted was verified and
   handled; the state is read through ``commet_webhooks.Commet`` along the way;
4. a table gives, per event type, how many events were emitted, how many delivery
   attempts they took, and how many times a handler ran (once each, or the demo fails).

One outage is simulated on purpose: the dunning handler's email service is down the
first time it sees ``payment.failed``. The receiver opts into retries on handler
errors, so it answers 500, the emulator retries, and the handler completes once.
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

from commet_webhooks import Commet, MemoryStore, WebhookEvent, Webhooks
from commet_webhooks.emulator import create_app
from commet_webhooks.events import EVENT_TYPES
from commet_webhooks.fastapi import webhook_router

HOST = "127.0.0.1"
TIME_SCALE = 36_000.0  # an hour of the retry schedule lasts 0.1 s
STEP_TIMEOUT = 20.0  # seconds to wait for a step's deliveries
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
            if fail_first and not self.failed_once:
                self.failed_once.add(event.id or "")
                console.print(
                    "    [yellow]simulated outage:[/] the dunning email service is down, so the "
                    "payment.failed handler fails once; the receiver answers 500 and Commet retries"
                )
                raise ConnectionError("email service unavailable (simulated)")
            with self.lock:
                self.handled.append(Handled(name, event))
                self.lock.notify_all()

        handle.__qualname__ = EVENT_TYPES[name].handler_keyword
        return handle

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until ``count`` events were handled in all; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.handled) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(remaining)
        return True


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


@dataclass
class Demo:
    emulator: httpx.Client
    commet: Commet
    recorder: Recorder
    problems: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return call_emulator(self.emulator, method, path, body)

    def emitted(self) -> dict[str, int]:
        counts: dict[str, int] = self.call("GET", "/api/emulator/event-counts")
        return counts

    def step(self, title: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Run one action (or clock advance) and wait until its events are all handled."""
        before = self.emitted()
        data = self.call(method, path, body)
        after = self.emitted()
        new = Counter(after) - Counter(before)
        done = self.recorder.wait_for(sum(after.values()), STEP_TIMEOUT)
        mark = "[green]ok[/]" if done else "[red]TIMEOUT[/]"
        names = ", ".join(f"{name}{f' x{n}' if n > 1 else ''}" for name, n in new.items())
        console.print(f"[bold]{title:<38}[/] {mark}  [dim]{names or '(no event)'}[/]")
        if not done:
            self.problems.append(f"{title}: not every event was handled in {STEP_TIMEOUT:g} s")
        return data

    def expect(self, condition: bool, description: str) -> None:
        console.print(
            f"    state: {description:<58} {'[green]ok[/]' if condition else '[red]NO[/]'}"
        )
        if not condition:
            self.problems.append(f"state check failed: {description}")

    def advance(self, title: str, days: int) -> None:
        self.step(f"clock +{days} d: {title}", "POST", "/api/v1/test-clock", {"advanceDays": days})


def run_year(demo: Demo) -> None:
    """A year of one subscription, through every step a real one meets."""
    demo.step("customer", "POST", "/api/v1/customers",
              {"externalId": CUSTOMER, "fullName": "Ada", "email": "ada@example.com"})  # fmt: skip
    trial = {"customerId": CUSTOMER, "planId": "plan_pro", "customTrialDays": 14}
    sub = demo.step("subscribe: Pro, 14-day trial", "POST", "/api/v1/subscriptions", trial)
    sub_id = sub["id"]
    demo.step(
        "checkout completed (card saved)", "POST", f"/api/emulator/subscriptions/{sub_id}/pay"
    )
    trialing = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(trialing is not None and trialing.status == "trialing", "trialing, with access")

    demo.advance("trial ends, first charge", 15)
    active = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(active is not None and active.status == "active", "active on Pro")
    demo.advance("a renewal", 31)
    for value, event_id in ((8_500, "import-1"), (8_500, "import-1"), (2_000, "import-2")):
        demo.step(f"usage: {value:,} API calls ({event_id})", "POST", "/api/v1/usage/events",
                  {"customerId": CUSTOMER, "featureCode": "api_calls", "value": value,
                   "eventId": event_id})  # fmt: skip
    calls = demo.commet.feature_access.get("api_calls", customer_id=CUSTOMER)
    demo.expect(calls.allowed, "past the quota: overage billing, still allowed")

    demo.call("POST", "/api/emulator/charges/fail-next", {"count": 1})
    console.print("    [dim]the next renewal's card charge will be declined[/]")
    demo.advance("renewal declined, dunning", 31)
    past_due = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(past_due is not None and past_due.status == "past_due", "past_due (grace period)")
    demo.advance("dunning retry recovers", 5)
    recovered = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(recovered is not None and recovered.status == "active", "recovered: active")

    change = f"/api/v1/subscriptions/{sub_id}/change-plan"
    demo.step("downgrade to Starter (scheduled)", "POST", change, {"newPlanId": "plan_starter"})
    demo.advance("downgrade takes effect", 31)
    starter = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(starter is not None and starter.plan.id == "plan_starter", "on Starter")

    demo.step("pause at period end, 30 days", "POST", f"/api/v1/subscriptions/{sub_id}/pause",
              {"mode": "period_end", "durationDays": 30})  # fmt: skip
    demo.advance("paused", 31)
    paused = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(paused is not None and paused.status == "paused", "paused, no access")
    demo.advance("resumed", 31)

    demo.step("cancel at period end", "POST", f"/api/v1/subscriptions/{sub_id}/cancel",
              {"reason": "moving on"})  # fmt: skip
    demo.advance("the rest of the year", 200)
    after = demo.commet.subscriptions.get_active(customer_id=CUSTOMER)
    demo.expect(after is None, "canceled: no active subscription")
    analytics = demo.commet.feature_access.get("advanced_analytics", customer_id=CUSTOMER)
    demo.expect(not analytics.allowed, "advanced analytics revoked")


def check_exactly_once(demo: Demo) -> dict[str, int]:
    """Every emitted event handled once, by its own handler; nothing extra a moment later."""
    time.sleep(0.5)
    emitted = demo.emitted()
    handled = Counter(h.event.id for h in demo.recorder.handled)
    for event_id, count in handled.items():
        if count != 1:
            demo.problems.append(f"event {event_id} was handled {count} times")
    by_type = Counter(h.event.event for h in demo.recorder.handled)
    if dict(by_type) != emitted:
        demo.problems.append(f"handled {dict(by_type)} but emitted {emitted}")
    for h in demo.recorder.handled:
        spec = EVENT_TYPES[h.registered_for]
        if h.registered_for != h.event.event or type(h.event) is not spec.event_class:
            demo.problems.append(f"{h.event.event} reached the handler for {h.registered_for}")
    retried = [tries for tries in demo.recorder.attempts.values() if len(tries) > 1]
    if not any(tries[0] >= 500 and tries[-1] == 200 for tries in retried):
        demo.problems.append("the failed dunning handler was not retried to success")
    return emitted


def summary_table(recorder: Recorder, emitted: dict[str, int]) -> Table:
    table = Table(title="Per event type", title_justify="left")
    table.add_column("event type")
    table.add_column("handler")
    table.add_column("emitted", justify="right")
    table.add_column("attempts", justify="right")
    table.add_column("handled", justify="right")
    handled = Counter(h.event.event for h in recorder.handled)
    attempts: Counter[str] = Counter()
    for h in recorder.handled:
        attempts[h.event.event] += len(recorder.attempts.get(h.event.id or "?", []))
    for name in sorted(
        emitted, key=lambda n: (EVENT_TYPES[n].family, n) if n in EVENT_TYPES else ("", n)
    ):
        keyword = EVENT_TYPES[name].handler_keyword if name in EVENT_TYPES else "-"
        table.add_row(name, keyword, str(emitted[name]), str(attempts[name]), str(handled[name]))
    return table


def run_demo(recorder: Recorder, problems: list[str]) -> dict[str, int]:
    """Start both servers, register the endpoint, run the year; stop everything."""
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
                http, "POST", "/api/v1/webhooks", {"url": receiver_url, "events": ["*"]}
            )
            console.print(
                f"[bold]Endpoint[/] {endpoint['id']} -> {receiver_url}  "
                f"[dim]secret whsec_******** issued[/]"
            )
            app = build_receiver(endpoint["secretKey"], recorder)
            with (
                receiver.serving(app),
                Commet(api_key=api_key, base_url=emulator.url, retries=0) as commet,
            ):
                console.print("[bold]Receiver[/] FastAPI + webhook_router, one handler per type\n")
                demo = Demo(http, commet, recorder, problems)
                run_year(demo)
                return check_exactly_once(demo)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=(
            "End-to-end demo on 127.0.0.1: a year of a subscription on a local Commet "
            "emulator's test clock, delivered to a FastAPI receiver; exits 0 when every "
            "event was verified and handled exactly once and every state check passed."
        )
    ).parse_args(argv)
    recorder = Recorder()
    problems: list[str] = []
    emitted: dict[str, int] = {}
    started = time.monotonic()
    try:
        emitted = run_demo(recorder, problems)
    except Exception as exc:  # reported below; the servers are already shut down
        problems.append(f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    console.print()
    console.print(summary_table(recorder, emitted))
    if problems:
        for problem in problems:
            console.print(f"[bold red]problem:[/] {problem}")
        console.print(f"[bold red]Demo FAILED[/] ({len(problems)} problem(s), {elapsed:.1f} s)")
        return 1
    console.print(
        f"[bold green]Demo OK:[/] {len(recorder.handled)} events of {len(emitted)} types "
        f"delivered, verified and handled exactly once; state checks passed ({elapsed:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
