"""The dashboard: one server-rendered page, usable without JavaScript.

``GET /`` shows the test clock (with an advance form), the endpoints and their
health (active, auto-disabled after failed events, disabled; a re-enable button),
and events newest first with their deliveries and attempts, 50 to a page; query
parameters filter by event type (``event``), family (``family``) and delivery
status (``status``), ``offset`` skips the newest events (the "older" link), and
``refresh=N`` turns on a reload every N seconds (off by default, so an opened
payload stays open). Each delivery has a redeliver button. Every form is a plain
POST that redirects back to the page.

The dashboard has no login: it is meant for the loopback interface. Its write
routes refuse cross-site form posts (a foreign ``Origin``), and the app answers
only requests addressed to its own host names.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .._wire import iso_time
from ..events import EVENT_TYPES
from .api.context import Context
from .api.control import event_view
from .api.http import read_raw
from .errors import ApiError
from .storage import DELIVERY_STATUSES, Endpoint

__all__ = ["Dashboard"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(default=True),
)
_REFRESH_SECONDS = "5"
_PAGE_SIZE = 50
_MAX_OFFSET = 10**9
_FAMILIES = sorted({spec.family for spec in EVENT_TYPES.values()})


def _endpoint_row(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as the page shows it: its health, never its secret."""
    if endpoint.enabled:
        state = "active"
    elif endpoint.disabled_reason == "consecutive_failures":
        state = "auto-disabled"
    else:
        state = "disabled"
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "api_version": endpoint.api_version,
        "enabled": endpoint.enabled,
        "state": state,
        "failures": endpoint.consecutive_failures,
    }


class Dashboard:
    """The HTML view of the emulator's events, deliveries and attempts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/dashboard/deliveries/{id}/retry", self.redeliver, methods=["POST"]),
            Route("/dashboard/endpoints/{id}/enable", self.enable, methods=["POST"]),
            Route("/dashboard/clock/advance", self.advance, methods=["POST"]),
        ]

    @staticmethod
    def _filters(request: Request) -> dict[str, str]:
        """The page's own query parameters, cleaned: anything else is dropped."""
        params = request.query_params
        status = params.get("status", "")
        refresh = params.get("refresh", "").lstrip("0")
        offset = params.get("offset", "").lstrip("0")
        family = params.get("family", "")
        return {
            "event": params.get("event", "")[:100],
            "family": family if family in _FAMILIES else "",
            "status": status if status in DELIVERY_STATUSES else "",
            "refresh": refresh if refresh.isdigit() and len(refresh) < 5 else "",
            "offset": offset if offset.isdigit() and int(offset) <= _MAX_OFFSET else "",
        }

    async def page(self, request: Request) -> Response:
        filters = self._filters(request)
        selection = {
            "event_type": filters["event"] or None,
            "status": filters["status"] or None,
            "family": filters["family"] or None,
        }
        offset = int(filters["offset"] or 0)
        store = self.ctx.store
        total = store.events.count(**selection)
        events = [
            event_view(e) for e in store.events.recent(**selection, limit=_PAGE_SIZE, offset=offset)
        ]
        for event in events:
            event["pretty"] = json.dumps(event["payload"], indent=2, ensure_ascii=False)

        def link(**changes: str) -> str:
            query = {key: value for key, value in {**filters, **changes}.items() if value}
            return "/?" + urlencode(query) if query else "/"

        older = offset + _PAGE_SIZE
        newer = max(offset - _PAGE_SIZE, 0)
        html = _TEMPLATES.get_template("dashboard.html").render(
            events=events,
            endpoints=[_endpoint_row(e) for e in store.endpoints.page()],
            event_types=store.events.types(),
            families=_FAMILIES,
            clock=self._clock(),
            engine_error=self.ctx.engine.last_error,
            statuses=DELIVERY_STATUSES,
            filters=filters,
            refresh=int(filters["refresh"] or 0),
            back=link().removeprefix("/"),
            refresh_toggle_url=link(refresh="" if filters["refresh"] else _REFRESH_SECONDS),
            total=total,
            first=offset + 1,
            last=offset + len(events),
            older_url=link(offset=str(older)) if older < total else None,
            newer_url=link(offset=str(newer) if newer else "") if offset else None,
        )
        return HTMLResponse(html)

    def _clock(self) -> dict[str, Any]:
        life = self.ctx.lifecycle
        return {
            "now": iso_time(life.clock.now()),
            "active": self.ctx.store.clock.offset() > 0,
            "run": self.ctx.store.clock.last_run(),
        }

    def _back(self, request: Request) -> Response:
        kept = {key: value for key, value in self._filters(request).items() if value}
        return RedirectResponse("/?" + urlencode(kept) if kept else "/", 303)

    async def enable(self, request: Request) -> Response:
        """Re-enable an endpoint (after an auto-disable): new events flow again."""
        if not _same_origin(request):
            return HTMLResponse("<p>Cross-site request refused.</p>", 403)
        endpoint_id = request.path_params["id"]
        if self.ctx.store.endpoints.update(endpoint_id, enabled=True) is None:
            return HTMLResponse("<p>No such endpoint.</p>", 404)
        return self._back(request)

    async def advance(self, request: Request) -> Response:
        """Advance the test clock by the form's ``days``."""
        if not _same_origin(request):
            return HTMLResponse("<p>Cross-site request refused.</p>", 403)
        body = await read_raw(request)  # capped: this form is a few bytes
        raw = parse_qs(body.decode("latin-1")).get("days", [""])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= 3660:
            return HTMLResponse("<p>days must be a whole number from 1 to 3660.</p>", 400)
        self.ctx.lifecycle.advance(days=int(raw))
        self.ctx.emitted()
        return self._back(request)

    async def redeliver(self, request: Request) -> Response:
        if not _same_origin(request):
            return HTMLResponse("<p>Cross-site request refused.</p>", 403)
        try:
            self.ctx.redeliver(request.path_params["id"])
        except ApiError as error:
            return HTMLResponse(f"<p>{html.escape(error.message)}</p>", error.status)
        kept = {key: value for key, value in self._filters(request).items() if value}
        return RedirectResponse("/?" + urlencode(kept) if kept else "/", 303)


def _same_origin(request: Request) -> bool:
    """A form post from another site carries its ``Origin``; ours matches ``Host``."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")
