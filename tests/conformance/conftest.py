"""Receivers for the conformance tests (one that follows every rule, and variants of it),
shared as fixtures.

Each variant changes one setting of the reference receiver, so a test can say which
rules that one change must break. Effects (welcome emails) go to an SQLite file shared
by every instance, as a real database would be.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from commet_webhooks import (
    MemoryStore,
    SQLiteStore,
    SubscriptionActivated,
    UnknownEvent,
    Webhooks,
    parse_event,
)
from commet_webhooks.conformance import simulate_crash
from commet_webhooks.dispatch import DEFAULT_MAX_BODY_BYTES

SECRET = "whsec_conformance_3c1f9a"


class Effects:
    """The side effect a probe counts: one row per welcome email sent."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "effects.sqlite3"
        with closing(self._connect()) as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS emails (event_id TEXT)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, event_id: str | None) -> None:
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO emails VALUES (?)", (event_id,))

    def count(self) -> int:
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM emails").fetchone()[0])


def build(
    directory: Path,
    *,
    framework: str = "starlette",
    store: str | None = "sqlite",
    retry: bool = True,
    crash_hook: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    reject_unknown: bool = False,
) -> Any:
    """One instance of the reference receiver, with the given setting changed."""
    effects = Effects(directory)

    def send_welcome_email(event: SubscriptionActivated) -> None:
        if crash_hook:
            simulate_crash(event)
        effects.record(event.id)

    def refuse_unknown(event: Any) -> None:
        if isinstance(event, UnknownEvent):
            raise LookupError(f"no handler for {event.event}")

    stores = {
        "sqlite": lambda: SQLiteStore(directory / "store.sqlite3"),
        "memory": MemoryStore,
        None: lambda: None,
    }
    webhooks = Webhooks(
        webhook_secret=SECRET,
        on_subscription_activated=send_welcome_email,
        on_payload=refuse_unknown if reject_unknown else None,
        idempotency_store=stores[store](),
        retry_on_handler_error=retry,
        max_body_bytes=max_body_bytes,
    )
    if framework == "starlette":
        from commet_webhooks.starlette import webhook_route

        return Starlette(routes=[webhook_route(webhooks)])
    if framework == "flask":
        from flask import Flask

        from commet_webhooks.flask import webhook_blueprint

        app = Flask(__name__)
        app.register_blueprint(webhook_blueprint(webhooks))
        return app
    raise ValueError(framework)


def build_unverified(directory: Path) -> Starlette:
    """A hand-written receiver that parses and handles without checking the signature."""
    effects = Effects(directory)

    async def receive(request: Request) -> JSONResponse:
        event = parse_event(await request.body())
        if isinstance(event, SubscriptionActivated):
            effects.record(event.id)
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/webhooks/commet", receive, methods=["POST"])])


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def effects(tmp_path: Path) -> Effects:
    """The effect store every receiver built by ``receiver`` in this test shares."""
    return Effects(tmp_path)


@pytest.fixture
def receiver(tmp_path: Path) -> Callable[..., Any]:
    """``receiver(**setting)``: a new instance of the reference receiver (see :func:`build`)."""
    return lambda **setting: build(tmp_path, **setting)


@pytest.fixture
def unverified_receiver(tmp_path: Path) -> Callable[[], Starlette]:
    return lambda: build_unverified(tmp_path)


@pytest.fixture
def fresh_imports() -> Iterator[None]:
    """Forget apps imported from files by the suite, so each test imports its own."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("_commet_app_"):
            del sys.modules[name]
