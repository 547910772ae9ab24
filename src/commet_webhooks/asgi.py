"""A bare ASGI app that receives Commet webhooks; mount it under any ASGI server or framework.

>>> from commet_webhooks.asgi import WebhookApp
>>> app = WebhookApp(webhooks)                      # uvicorn module:app
>>> Mount("/webhooks/commet", app=WebhookApp(webhooks))   # or inside Starlette

No framework is imported: the app speaks ASGI 3 directly. The Starlette and FastAPI
adapters reuse it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ._adapter import answer_async
from .dispatch import WebhookResponse, Webhooks

__all__ = ["WebhookApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DISCONNECTED = WebhookResponse(400, b'{"received":false,"error":"Client disconnected"}')


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
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        try:
            return await answer_async(
                self.webhooks,
                scope["method"],
                headers.get("content-length"),
                headers,
                lambda: _body_chunks(receive),
            )
        except _Disconnected:
            return _DISCONNECTED


async def send_response(send: Send, response: WebhookResponse) -> None:
    """Send a :class:`WebhookResponse` as an ASGI HTTP response."""
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
    ]
    headers.append((b"content-length", str(len(response.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown when the app is served on its own."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
