"""``listen``: a local receiver that verifies each delivery and prints it.

Verification, parsing and the answer all come from :meth:`Webhooks.handle` (through
the bare ASGI adapter); this module only routes the path and reports each answer's
``outcome`` and ``event``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel

from .._responses import Outcome
from .._wire import get_header
from ..asgi import WebhookApp, send_response
from ..dispatch import WebhookResponse, Webhooks
from ..events import WebhookEvent
from ..stores import MemoryStore
from ._common import console

__all__ = [
    "Delivery",
    "Receiver",
    "Reporter",
    "build_receiver",
    "json_delivery",
    "print_delivery",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

@dataclass(frozen=True)
class Delivery:
    """One request the receiver answered."""

    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    response: WebhookResponse
    event: WebhookEvent | None
    elapsed_ms: float


Reporter = Callable[[Delivery], None]


class Receiver:
    """ASGI app: requests to ``path`` go to :class:`~commet_webhooks.asgi.WebhookApp`
    (which hands the raw body to ``webhooks.handle``); other paths get 404. Every
    request is reported once answered.
    """

    def __init__(self, webhooks: Webhooks, path: str, report: Reporter) -> None:
        self.app = WebhookApp(webhooks)
        self.path = "/" + path.strip("/")
        self.report = report

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if path.rstrip("/") != self.path.rstrip("/"):
            response = _not_found(self.path)
        else:
            response = await self.app.respond(scope, receive)
        await send_response(send, response)
        self.report(
            Delivery(
                method=scope["method"],
                path=path,
                headers=headers,
                body_size=_declared_size(headers),
                response=response,
                event=response.event,
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )
        )


def _declared_size(headers: dict[str, str]) -> int:
    value = get_header(headers, "content-length") or ""
    return int(value) if value.isdigit() else 0


def _not_found(path: str) -> WebhookResponse:
    body = json.dumps({"received": False, "error": f"Not found: webhooks are received at {path}"})
    headers = {"content-type": "application/json"}
    return WebhookResponse(404, body.encode(), headers, Outcome.NOT_FOUND)


def build_receiver(secrets: list[str], path: str, report: Reporter) -> Receiver:
    """A receiver that verifies with ``secrets`` and answers duplicates as Commet expects."""
    webhooks = Webhooks(webhook_secret=secrets, idempotency_store=MemoryStore())
    return Receiver(webhooks, path, report)


# ------------------------------------------------------------------ reporting


def _error_text(response: WebhookResponse) -> str:
    try:
        answer = json.loads(response.body)
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts = [str(answer[k]) for k in ("error", "detail", "warning") if answer.get(k)]
    return ": ".join(parts)


def print_delivery(delivery: Delivery) -> None:
    """Pretty-print one delivery: the verified event, or a red line saying why it was refused."""
    now = datetime.now().strftime("%H:%M:%S")
    response = delivery.response
    event = delivery.event
    label = get_header(delivery.headers, "x-commet-event") or "(no X-Commet-Event header)"
    status = response.status
    if event is not None:
        label = event.event
    head = f"[dim]{now}[/] {delivery.method} {escape(delivery.path)} -> "
    if response.outcome is Outcome.INVALID_SIGNATURE:
        why = (
            "no X-Commet-Signature header"
            if get_header(delivery.headers, "x-commet-signature") is None
            else "the signature does not match the secret"
        )
        console.print(
            f"{head}[bold red]{status} bad signature[/] [red]{escape(label)} "
            f"({delivery.body_size} bytes) rejected: {why}[/]"
        )
        return
    if response.outcome is Outcome.DUPLICATE:
        console.print(f"{head}[bold yellow]{status} duplicate[/] {escape(label)}: handlers skipped")
        return
    if response.outcome is Outcome.ACCEPTED_RAW and event is not None:
        console.print(
            f"{head}[bold yellow]{status} accepted untyped[/] {escape(label)}: "
            f"{escape(event.schema_error or '')} (handlers for this type skipped)"
        )
        return
    if not response.ok or event is None:
        reason = _error_text(response) or "refused"
        console.print(f"{head}[bold red]{status}[/] [red]{escape(label)}: {escape(reason)}[/]")
        return
    console.print(
        f"{head}[bold green]{status} verified[/] [bold]{escape(event.event)}[/] "
        f"[dim]{escape(event.id or '')} {delivery.elapsed_ms:.1f} ms[/]"
    )
    raw = event.raw
    title = f"{type(event).__name__}  {escape(event.event)}  mode={escape(str(raw.get('mode')))}"
    console.print(
        Panel(JSON.from_data(raw.get("data"), sort_keys=False), title=title, expand=False)
    )


def json_delivery(delivery: Delivery) -> None:
    """Print one delivery as a JSON line, for scripts.

    ``verified`` is true whenever the signature checked out: a handled event, a
    duplicate, or a 400 (signed correctly, but the body is not a valid event).
    """
    event = delivery.event
    outcome = delivery.response.outcome
    line: dict[str, Any] = {
        "status": delivery.response.status,
        "outcome": outcome.value,
        "verified": event is not None or outcome is Outcome.INVALID_PAYLOAD,
        "duplicate": outcome is Outcome.DUPLICATE,
        "event": event.event if event else get_header(delivery.headers, "x-commet-event"),
        "class": type(event).__name__ if event else None,
        "error": _error_text(delivery.response) or None,
        "envelope": event.raw if event else None,
    }
    print(json.dumps(line), flush=True)
