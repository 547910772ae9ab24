"""aiohttp adapter: a ``web`` handler that receives Commet webhooks.

>>> from commet_webhooks.aiohttp import webhook_handler
>>> app.router.add_route("*", "/webhooks/commet", webhook_handler(webhooks))

Route every method (``"*"``) to it so that non-POST requests get our 405 with
``Allow: POST``; ``add_post`` works too, leaving 405s to aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ._adapter import answer_async, repeated_signature
from .dispatch import SIGNATURE_HEADER, Webhooks

__all__ = ["webhook_handler"]


def webhook_handler(webhooks: Webhooks) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An ``aiohttp.web`` handler; the body is streamed and never parsed before verification.

    aiohttp's own ``client_max_size`` does not apply (the body is not read through
    ``request.read()``); ``webhooks.max_body_bytes`` does.
    """

    async def receive_commet_webhook(request: web.Request) -> web.Response:
        if len(request.headers.getall(SIGNATURE_HEADER, ())) > 1:
            reply = repeated_signature(webhooks)
            return web.Response(body=reply.body, status=reply.status, headers=reply.headers)
        reply = await answer_async(
            webhooks,
            request.method,
            request.headers.get("Content-Length"),
            request.headers,
            lambda: _body_chunks(request),
        )
        return web.Response(body=reply.body, status=reply.status, headers=reply.headers)

    return receive_commet_webhook


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a body aiohttp cannot decode is an unreadable body (400).

    aiohttp reports a malformed body (bad ``Content-Encoding`` data, broken chunked
    framing) by raising from the stream; the shared reader answers ``OSError`` cleanly.
    """
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        raise OSError(f"unreadable body: {type(exc).__name__}") from exc
