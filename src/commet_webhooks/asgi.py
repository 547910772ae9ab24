"""A bare ASGI app that receives Commet webhooks; mount it under any ASGI server or framework.

>>> from commet_webhooks.asgi import WebhookApp
>>> app = WebhookApp(webhooks)                      # uvicorn module:app
>>> Mount("/webhooks/commet", app=WebhookApp(webhooks))   # or inside Starlette

No framework is imported: the app speaks ASGI 3 directly. The Starlette and FastAPI
adapters reuse it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from . import _responses as answers
from ._adapter import repeated_signature
from .dispatch import DEFAULT_MAX_BODY_BYTES, WebhookResponse, Webhooks

__all__ = ["BodyLimit", "WebhookApp", "send_response"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[Any]]
"""An ASGI app to wrap, whatever its own annotations (Django's take ``dict``/``Mapping``)."""
RawHeaders = Sequence[tuple[bytes, bytes]]

_SIGNATURE = b"x-commet-signature"
_CONTENT_LENGTH = b"content-length"


class _Disconnected(Exception):
    """The client went away before the body was complete."""


class WebhookApp:
    """ASGI app: POST a Commet webhook to it, get Commet's expected answer back.

    Reads the raw body (never parsed or re-encoded before verification), answers 405
    to other methods and 413 past ``webhooks.max_body_bytes`` without reading the rest.
    """

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def __repr__(self) -> str:
        return f"WebhookApp({self.webhooks!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send_response(send, await self.respond(scope, receive))
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def respond(self, scope: Scope, receive: Receive) -> WebhookResponse:
        """Turn one HTTP request (its scope and ``receive``) into the webhook answer."""
        webhooks = self.webhooks
        raw: RawHeaders = scope["headers"]
        length = None
        signatures = 0
        for name, value in raw:  # one pass, no per-request dict of every header
            if name == _CONTENT_LENGTH:
                length = value
            elif name == _SIGNATURE:
                signatures += 1
        if signatures > 1:
            return repeated_signature(webhooks)
        early = webhooks.preflight(
            scope["method"], None if length is None else length.decode("latin-1")
        )
        if early is not None:
            return early
        try:
            body = await _read_body(receive, webhooks.max_body_bytes)
        except _Disconnected:
            return webhooks.early(answers.DISCONNECTED)
        if body is None:
            return webhooks.too_large()
        return await webhooks.handle(body, ScopeHeaders(raw))


class ScopeHeaders(Mapping[str, str]):
    """The headers of an ASGI scope as a read-only mapping, decoded on demand.

    Lookups take the lower-case name ASGI servers give; a repeated header yields its
    last value, as a dict built from the list would.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: RawHeaders) -> None:
        self._raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        key = name.encode("latin-1").lower()
        found = None
        for header, value in self._raw:
            if header == key:
                found = value
        return default if found is None else found.decode("latin-1")

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name.decode("latin-1") for name, _ in self._raw))

    def __len__(self) -> int:
        return len({name for name, _ in self._raw})

    def __repr__(self) -> str:
        return f"ScopeHeaders({list(self)!r})"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (the rest is not read)."""
    message = await receive()
    if message["type"] != "http.request":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message
        return None if len(body) > limit else body
    parts = [body]
    total = len(body)
    while True:
        if total > limit:
            return None
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        parts.append(chunk)
        total += len(chunk)
        if not message.get("more_body", False):
            return None if total > limit else b"".join(parts)


# Encoded response headers, by the identity of a response's headers mapping: the
# fixed answers share theirs, so the common replies are encoded once. An entry keeps
# its mapping alive, so the id cannot be reused while the entry exists; responses are
# immutable by contract (``WebhookResponse`` is frozen).
_ENCODED: dict[int, tuple[Mapping[str, str], list[tuple[bytes, bytes]]]] = {}
_ENCODED_MAX = 256


def _encoded_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    cached = _ENCODED.get(id(headers))
    if cached is not None and cached[0] is headers:
        return cached[1]
    encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if len(_ENCODED) >= _ENCODED_MAX:  # one-off answers (e.g. a 400's detail) filled it
        _ENCODED.clear()
    _ENCODED[id(headers)] = (headers, encoded)
    return encoded


async def send_response(send: Send, response: WebhookResponse) -> None:
    """Send a :class:`WebhookResponse` as an ASGI HTTP response (two messages)."""
    body = response.body
    headers = [*_encoded_headers(response.headers), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})




class BodyLimit:
    """ASGI middleware: cap the request body on webhook paths before the wrapped app reads it.

    For frameworks that read the whole body before any view runs -- Django under
    ASGI spools it to memory or disk first -- so that ``max_body_bytes`` holds there
    too. On the given ``paths`` a declared ``Content-Length`` over the limit is
    answered 413 at once, and a body without one is read with the cap: past it, 413
    without reading the rest. A body within the limit is handed to the app as one
    message. Other paths (and other scope types) pass through untouched.

    >>> application = BodyLimit(get_asgi_application(), ["/webhooks/commet/"])

    ``paths`` are request paths as the server sees them; a trailing slash is ignored.
    ``webhooks``: the receiver behind those paths, so that its observer (metrics, logs)
    counts the 413s answered here like its own.
    """

    def __init__(
        self,
        app: ASGIApp,
        paths: Sequence[str],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        webhooks: Webhooks | None = None,
    ) -> None:
        if isinstance(paths, str):
            paths = [paths]
        if not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise ValueError("paths must be one or more paths starting with '/'")
        if not isinstance(max_body_bytes, int) or max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be a positive integer")
        self.app = app
        self.paths = frozenset(_path_key(p) for p in paths)
        self.max_body_bytes = max_body_bytes
        self.webhooks = webhooks

    def __repr__(self) -> str:
        paths = sorted(self.paths)
        return f"BodyLimit({self.app!r}, paths={paths}, max_body_bytes={self.max_body_bytes})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _path_key(scope.get("path", "")) not in self.paths:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == _CONTENT_LENGTH and value.isdigit() and int(value) > limit:
                await send_response(send, self._too_large())
                return
        try:
            body = await _read_body(receive, limit)
        except _Disconnected:
            return  # the client left mid-body: nobody to answer
        if body is None:
            await send_response(send, self._too_large())
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # e.g. http.disconnect, for the app to see
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> WebhookResponse:
        """The 413, told to the receiver's observer when there is one."""
        if self.webhooks is None:
            return answers.TOO_LARGE
        return self.webhooks.too_large()


def _path_key(path: str) -> str:
    return path.rstrip("/") or "/"


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown when the app is served on its own."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
