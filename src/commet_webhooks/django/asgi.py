"""Django under ASGI: keep the webhook body limit before Django reads the body.

Django's ASGI handler reads (and spools to disk) the whole request body before any
view runs, so a view cannot stop an oversized upload. Wrap the ASGI application in
your project's ``asgi.py``::

    from django.core.asgi import get_asgi_application
    from commet_webhooks.django.asgi import limit_body

    application = limit_body(get_asgi_application(), "/webhooks/commet/")

The limit is ``max_body_bytes`` from ``COMMET_WEBHOOK_OPTIONS`` (1 MiB unless set);
only the given paths are capped, the rest of the site is untouched. Under WSGI the
views stream the body themselves and need no wrapper.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from ..asgi import ASGIApp, BodyLimit
from ..dispatch import DEFAULT_MAX_BODY_BYTES, Webhooks

__all__ = ["limit_body"]


def limit_body(
    application: ASGIApp,
    *paths: str,
    max_body_bytes: int | None = None,
    webhooks: Webhooks | None = None,
) -> BodyLimit:
    """Wrap Django's ASGI ``application`` so that bodies to ``paths`` are capped first.

    ``paths`` default to ``/webhooks/commet/``; ``max_body_bytes`` to the plugin's
    setting. Call it after ``get_asgi_application()`` (settings must be loaded).
    ``webhooks``: the receiver your view uses, when it is instrumented, so that the
    413s answered here are counted with its other answers.
    """
    if max_body_bytes is None:
        options: dict[str, Any] = dict(getattr(settings, "COMMET_WEBHOOK_OPTIONS", None) or {})
        max_body_bytes = int(options.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
    return BodyLimit(
        application,
        paths or ("/webhooks/commet/",),
        max_body_bytes=max_body_bytes,
        webhooks=webhooks,
    )
