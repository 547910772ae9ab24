"""The dashboard: one server-rendered page, usable without JavaScript.

``GET /`` lists events newest first with their deliveries and attempts, 50 to a
page; query parameters filter by event type (``event``) and delivery status
(``status``), ``offset`` skips the newest events (the "older" link), and
``refresh=N`` turns on a reload every N seconds (off by default, so an opened
payload stays open). Each delivery has a redeliver button: a plain form POST that
redirects back to the page.

The dashboard has no login: it is meant for the loopback interface. Its one
write route refuses cross-site form posts (a foreign ``Origin``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .api.context import Context
from .api.control import event_view
from .api.legacy import endpoint_view
from .errors import ApiError
from .storage import DELIVERY_STATUSES

__all__ = ["Dashboard"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(default=True),
)
_REFRESH_SECONDS = "5"
_PAGE_SIZE = 50
_MAX_OFFSET = 10**9


class Dashboard:
    """The HTML view of the emulator's events, deliveries and attempts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/dashboard/deliveries/{id}/retry", self.redeliver, methods=["POST"]),
        ]

    @staticmethod
    def _filters(request: Request) -> dict[str, str]:
        """The page's own query parameters, cleaned: anything else is dropped."""
        params = request.query_params
        status = params.get("status", "")
        refresh = params.get("refresh", "").lstrip("0")
        offset = params.get("offset", "").lstrip("0")
        return {
            "event": params.get("event", "")[:100],
            "status": status if status in DELIVERY_STATUSES else "",
            "refresh": refresh if refresh.isdigit() and len(refresh) < 5 else "",
            "offset": offset if offset.isdigit() and int(offset) <= _MAX_OFFSET else "",
        }

    async def page(self, request: Request) -> Response:
        filters = self._filters(request)
        selection = {"event_type": filters["event"] or None, "status": filters["status"] or None}
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
            endpoints=[endpoint_view(e) for e in store.endpoints.page()],
            event_types=store.events.types(),
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
