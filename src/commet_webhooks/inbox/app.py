"""A read-only page over the inbox, with a replay button behind a token (plain ASGI).

``create_app(inbox, webhooks=..., token=...)`` returns an ASGI application to mount
in any ASGI server or framework (``app.mount("/inbox", create_app(...))`` in
Starlette or FastAPI, or ``uvicorn module:page`` on its own)::

    page = create_app(inbox, webhooks=webhooks, token=os.environ["INBOX_TOKEN"])

``GET /`` lists events newest first, 50 to a page, with counts per status; query
parameters filter by ``status`` and ``type``, ``offset`` pages back. Bodies are not
shown (they can carry customer data). Without ``token`` (or ``webhooks``) the page
only reads. With both, a visitor who enters the token (``POST /unlock``, which sets
an HttpOnly, SameSite=Strict cookie holding an HMAC of the token, never the token)
gets a replay button on every replayable event: ``POST /replay/{id}`` runs
:func:`~commet_webhooks.inbox.areplay` for that one event and redirects back.
Write routes refuse cross-site posts (a foreign ``Origin``). The page has no
JavaScript. Mount it behind your own authentication: event ids, types and error
messages are visible to whoever can reach it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from ..errors import StoreUnavailableError
from ._model import EventRecord, Filter, Status
from ._replay import areplay
from ._store import InboxStore

if TYPE_CHECKING:
    from ..dispatch import Webhooks

__all__ = ["create_app"]

logger = logging.getLogger("commet_webhooks.inbox")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE_SIZE = 50
_COOKIE = "commet_inbox_replay"
_MAX_FORM = 4096
_MAX_OFFSET = 10**7

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.3rem; margin: 0 0 .8rem; }
nav a { margin-right: .8rem; }
nav a.current { font-weight: bold; text-decoration: none; color: inherit; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd;
  vertical-align: top; }
td.error { max-width: 28rem; overflow-wrap: anywhere; color: #8a1c1c; }
.badge { padding: .05rem .45rem; border-radius: .6rem; font-size: .8rem; }
.status-done { background: #d8f3dc; } .status-skipped { background: #dbeafe; }
.status-failed { background: #fde2e2; } .status-dead { background: #f8b4b4; }
.status-processing { background: #fef3c7; } .status-received { background: #e5e7eb; }
.notice { padding: .5rem .8rem; background: #eef6ff; border: 1px solid #b6d4fe;
  margin-bottom: 1rem; }
form.inline { display: inline; margin: 0; }
.pager a { margin-right: 1rem; }
"""


def _fingerprint(token: str) -> str:
    return hmac.new(token.encode(), b"commet-inbox-replay", hashlib.sha256).hexdigest()


def _time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class _Request:
    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope.get("method", "GET").upper()
        self.root: str = scope.get("root_path", "") or ""
        path: str = scope.get("path", "/") or "/"
        if self.root and path.startswith(self.root):
            path = path[len(self.root) :] or "/"
        self.path = path
        self.query = {
            k: v[0]
            for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
            if v
        }
        self.headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def same_origin(self) -> bool:
        origin = self.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        return urlsplit(origin).netloc == self.headers.get("host", "")

    async def form(self) -> dict[str, str] | None:
        body = b""
        while True:
            message = await self.receive()
            body += message.get("body", b"")
            if len(body) > _MAX_FORM:
                return None
            if not message.get("more_body"):
                break
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}


class InboxPage:
    """The ASGI application :func:`create_app` returns."""

    def __init__(
        self, inbox: InboxStore, webhooks: Webhooks | None = None, token: str | None = None
    ) -> None:
        if not isinstance(inbox, InboxStore):
            raise TypeError("create_app needs an inbox (SQLiteInbox or PostgresInbox)")
        if token is not None and len(token) < 16:
            raise ValueError("token must be at least 16 characters")
        if token is not None and webhooks is None:
            raise ValueError("a replay token needs webhooks= (whose handlers a replay runs)")
        self.inbox = inbox
        self.webhooks = webhooks
        self._fingerprint = None if token is None else _fingerprint(token)

    def __repr__(self) -> str:
        return f"InboxPage({self.inbox!r}, replay={'on' if self._fingerprint else 'off'})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = _Request(scope, receive)
        try:
            await self._route(request, send)
        except StoreUnavailableError as exc:
            logger.warning("inbox page: %s", exc)
            await _respond(send, 503, _page("Inbox unavailable", "<p>The inbox store is "
                           "unavailable right now; try again shortly.</p>"))  # fmt: skip

    # ------------------------------------------------------------ routes

    async def _route(self, request: _Request, send: Send) -> None:
        if request.path == "/":
            if request.method not in ("GET", "HEAD"):
                await _respond(send, 405, _page("Not allowed", "<p>Use GET.</p>"))
                return
            await _respond(send, 200, await self._listing(request))
            return
        if request.path == "/unlock" or request.path.startswith("/replay/"):
            if request.method != "POST":
                await _respond(send, 405, _page("Not allowed", "<p>Use POST.</p>"))
                return
            if not request.same_origin():
                await _respond(send, 403, _page("Forbidden", "<p>Cross-site post refused.</p>"))
                return
            if request.path == "/unlock":
                await self._unlock(request, send)
            else:
                await self._replay(request, send)
            return
        await _respond(send, 404, _page("Not found", "<p>No such page.</p>"))

    def _unlocked(self, request: _Request) -> bool:
        cookie = request.cookie(_COOKIE)
        return (
            self._fingerprint is not None
            and cookie is not None
            and hmac.compare_digest(cookie, self._fingerprint)
        )

    async def _unlock(self, request: _Request, send: Send) -> None:
        form = await request.form()
        token = (form or {}).get("token", "")
        if self._fingerprint is None or not hmac.compare_digest(
            _fingerprint(token), self._fingerprint
        ):
            await _redirect(send, request.root + "/?" + urlencode({"notice": "wrong token"}))
            return
        cookie = (
            f"{_COOKIE}={self._fingerprint}; Path={request.root or '/'}; HttpOnly; SameSite=Strict"
        )
        await _redirect(send, request.root + "/", cookie)

    async def _replay(self, request: _Request, send: Send) -> None:
        if not self._unlocked(request) or self.webhooks is None:
            await _respond(send, 403, _page("Forbidden", "<p>Enter the replay token first.</p>"))
            return
        await request.form()
        key = request.path[len("/replay/") :]
        from urllib.parse import unquote

        key = unquote(key)
        record = await self.inbox.aget(key)
        if record is None:
            await _respond(send, 404, _page("Not found", "<p>No such event.</p>"))
            return
        report = await areplay(self.webhooks, key, inbox=self.inbox)
        result = report.results[0]
        now = result.after.value if result.after else result.action
        notice = f"replayed {key}: {now}" if result.ran else f"{key}: {result.action}"
        await _redirect(send, request.root + "/?" + urlencode({"notice": notice}))

    async def _listing(self, request: _Request) -> str:
        status = request.query.get("status")
        statuses = (Status(status),) if status in {s.value for s in Status} else ()
        event_type = request.query.get("type") or ""
        try:
            offset = min(max(int(request.query.get("offset", "0")), 0), _MAX_OFFSET)
        except ValueError:
            offset = 0
        base = Filter(status=statuses, event_type=(event_type,) if event_type else ())
        counts = await self.inbox.acounts(Filter(event_type=base.event_type))
        total = sum(n for s, n in counts.items() if not statuses or s in statuses)
        records = await self.inbox.alist(
            Filter(
                status=base.status,
                event_type=base.event_type,
                limit=offset + PAGE_SIZE,
                newest_first=True,
            )
        )
        records = records[offset:]
        unlocked = self._unlocked(request)
        return self._render(request, records, counts, total, statuses, event_type, offset, unlocked)

    # ------------------------------------------------------------ rendering

    def _render(
        self,
        request: _Request,
        records: list[EventRecord],
        counts: dict[Status, int],
        total: int,
        statuses: tuple[Status, ...],
        event_type: str,
        offset: int,
        unlocked: bool,
    ) -> str:
        root = html.escape(request.root)
        e = html.escape
        parts: list[str] = []
        notice = request.query.get("notice")
        if notice:
            parts.append(f'<p class="notice" id="notice">{e(notice)}</p>')
        links = [_link(request.root, None, event_type, "all", sum(counts.values()), not statuses)]
        for s in Status:
            current = statuses == (s,)
            links.append(
                _link(request.root, s.value, event_type, s.value, counts.get(s, 0), current)
            )
        parts.append('<nav id="statuses">' + "".join(links) + "</nav>")
        if self._fingerprint is not None and not unlocked:
            parts.append(
                f'<form method="post" action="{root}/unlock" id="unlock">'
                '<label>Replay token <input type="password" name="token" autocomplete="off">'
                "</label> <button>Unlock replay</button></form>"
            )
        first = offset + 1 if records else 0
        parts.append(
            f'<p id="summary">Events {first}-{offset + len(records)} of {total}'
            f"{' of type <code>' + e(event_type) + '</code>' if event_type else ''}</p>"
        )
        if not records:
            parts.append("<p>No events match.</p>")
        else:
            rows = []
            for r in records:
                action = ""
                if unlocked and r.replayable:
                    action = (
                        f'<form class="inline" method="post" '
                        f'action="{root}/replay/{e(quote(r.key, safe=""))}">'
                        '<button class="replay">Replay</button></form>'
                    )
                untyped = ' <span class="badge">untyped</span>' if r.untyped else ""
                rows.append(
                    f'<tr id="event-{e(r.key)}"><td><code>{e(r.key)}</code></td>'
                    f"<td><code>{e(r.event_type)}</code>{untyped}</td>"
                    f'<td><span class="badge status-{r.status.value}">{r.status.value}</span></td>'
                    f'<td class="attempts">{r.attempts}</td><td>{_time(r.received_at)}</td>'
                    f"<td>{_time(r.handled_at)}</td>"
                    f'<td class="error">{e((r.last_error or "")[:300])}</td><td>{action}</td></tr>'
                )
            parts.append(
                '<div class="scroll"><table id="events"><thead><tr><th>id</th><th>type</th>'
                "<th>status</th><th>attempts</th><th>received (UTC)</th><th>handled</th>"
                "<th>last error</th><th></th></tr></thead><tbody>"
                + "".join(rows)
                + "</tbody></table></div>"
            )
        pager = []
        query = {k: v for k, v in (("status", statuses[0].value if statuses else ""),
                                   ("type", event_type)) if v}  # fmt: skip
        if offset > 0:
            newer = {**query, **({"offset": str(offset - PAGE_SIZE)} if offset > PAGE_SIZE else {})}
            pager.append(f'<a class="newer" href="{root}/?{e(urlencode(newer))}">newer</a>')
        if offset + len(records) < total:
            older = {**query, "offset": str(offset + PAGE_SIZE)}
            pager.append(f'<a class="older" href="{root}/?{e(urlencode(older))}">older</a>')
        if pager:
            parts.append('<p class="pager">' + "".join(pager) + "</p>")
        return _page("Commet webhooks inbox", "\n".join(parts))


def _link(root: str, status: str | None, event_type: str, label: str, n: int, on: bool) -> str:
    query = urlencode({k: v for k, v in (("status", status), ("type", event_type)) if v})
    href = html.escape(f"{root}/" + (f"?{query}" if query else ""))
    css = ' class="current"' if on else ""
    return f'<a{css} href="{href}">{html.escape(label)} ({n})</a>'


def _page(title: str, content: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{content}\n</body></html>\n"
    )


_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    ),
]


async def _respond(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie: str | None = None) -> None:
    headers = [(b"location", location.encode("latin-1", "replace")), (b"content-length", b"0")]
    if cookie is not None:
        headers.append((b"set-cookie", cookie.encode("latin-1")))
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def create_app(
    inbox: InboxStore, *, webhooks: Webhooks | None = None, token: str | None = None
) -> InboxPage:
    """The inbox page as an ASGI application; replay needs both ``webhooks`` and ``token``."""
    return InboxPage(inbox, webhooks, token)
