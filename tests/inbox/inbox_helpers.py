"""Helpers shared by the inbox tests and the worker processes they spawn (picklable)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from commet_webhooks import Webhooks
from commet_webhooks.errors import EventSchemaError
from commet_webhooks.inbox import InboxStore, OrderingGuard
from support import services

POSTGRES_DSN = services.POSTGRES_URL


@dataclass(frozen=True)
class InboxSpec:
    kind: str  # sqlite | postgres
    target: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, **overrides: Any) -> InboxStore:
        options = {**self.options, **overrides}
        if self.kind == "sqlite":
            from commet_webhooks.inbox.sqlite import SQLiteInbox

            return SQLiteInbox(self.target, **options)
        from commet_webhooks.inbox.postgres import PostgresInbox

        return PostgresInbox(self.target, **options)

    def at(self, target: str) -> InboxSpec:
        return InboxSpec(self.kind, target, self.options)


def record_effect(path: str, line: str) -> None:
    """Append one line per effect; O_APPEND keeps lines whole across processes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def read_effects(folder: Path, pattern: str = "effects-*.txt") -> list[str]:
    return [line for p in sorted(folder.glob(pattern)) for line in p.read_text().split()]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def old_decoder(body: Any) -> Any:
    """What a library too old for a drifted event does: accept it untyped."""
    from commet_webhooks._envelope import UnknownEvent

    event = msgspec.json.decode(body, type=UnknownEvent)
    event.__dict__["_body"] = bytes(body)
    raise EventSchemaError("data.newField is not a known field", field="data", event=event)


def delivery_worker(
    spec: InboxSpec,
    secret: str,
    deliveries: list[tuple[bytes, dict[str, str]]],
    folder: str,
    index: int,
    buggy: list[str],
    guarded: bool,
) -> None:
    """Deliver every request (shuffled, with duplicates) through one ``Webhooks``.

    The handler fails for the event ids in ``buggy`` (the bug) and appends one line per
    effect otherwise; with ``guarded`` it sits behind the ordering guard and records
    ``resource timestamp id``.
    """
    rng = random.Random(index)
    deliveries = list(deliveries)
    rng.shuffle(deliveries)
    effects = os.path.join(folder, f"effects-{index}.txt")
    inbox = spec.build()
    try:

        def apply(event: Any) -> None:
            if event.id in buggy:
                raise RuntimeError(f"bug in handler for {event.id}")
            time.sleep(0.002)
            data = event.raw["data"]
            record_effect(
                effects, f"{data.get('subscriptionId')},{event.timestamp.timestamp()},{event.id}"
            )

        handler = OrderingGuard(inbox)(apply) if guarded else apply
        webhooks = Webhooks(secret, on_payload=handler, idempotency_store=inbox)
        Path(folder, f"ready-{index}").touch()
        wait_for(lambda: Path(folder, "go").exists(), 60, "the go signal")
        statuses = []
        for body, headers in deliveries:
            statuses.append(str(webhooks.handle_sync(body, headers).status))
        Path(folder, f"result-{index}.txt").write_text(" ".join(statuses))
    finally:
        inbox.close()
