"""Starlette adapter: a ``Route`` that receives Commet webhooks.

>>> from commet_webhooks.starlette import webhook_route
>>> app = Starlette(routes=[webhook_route(webhooks)])
"""

from __future__ import annotations

try:
    from starlette.routing import Route
except ImportError as exc:  # an optional extra is not installed
    from ._optional import missing_extra

    raise missing_extra("commet_webhooks.starlette", "starlette", exc) from exc

from ._adapter import DEFAULT_PATH
from .asgi import WebhookApp
from .dispatch import Webhooks

__all__ = ["webhook_route"]


def webhook_route(
    webhooks: Webhooks, path: str = DEFAULT_PATH, *, name: str = "commet_webhooks"
) -> Route:
    """A route at ``path`` answering every method: POST is handled, others get 405.

    The endpoint is :class:`~commet_webhooks.asgi.WebhookApp`, so the body reaches
    verification as raw bytes whatever its content type.
    """
    return Route(path, endpoint=WebhookApp(webhooks), name=name)
