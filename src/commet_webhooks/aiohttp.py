"""aiohttp adapter: a ``web`` handler that receives Commet webhooks.

>>> from commet_webhooks.aiohttp import webhook_handler
>>> app.router.add_route("*", "/webhooks/commet", webhook_handler(webhooks))

Route every method (``"*"``) to it so that non-POST requests get our 405 with
``Allow: POST``; ``add_post`` works too, leaving 405s to aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ._adapter import answer_async
from .dispatch import Webhooks

__all__ = ["webhook_handler"]


def webhook_handler(webhooks: Webhooks) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An ``aiohttp.web`` handler; the body is streamed and never parsed before verification.

    aiohttp's own ``client_max_size`` does not apply (the body is not read through
    ``request.read()``); ``webhooks.max_body_bytes`` does.
    """

    async def receive_commet_webhook(request: web.Request) -> web.Response:
        reply = await answer_async(
            webhooks,
            request.method,
            request.headers.get("Content-Length"),
            request.headers,
            request.content.iter_any,
        )
        return web.Response(body=reply.body, status=reply.status, headers=reply.headers)

    return receive_commet_webhook
