"""Django adapter: a CSRF-exempt view, and a settings-driven plugin with signals.

Explicit view, for a ``Webhooks`` you build yourself::

    from commet_webhooks.django import webhook_view
    urlpatterns = [path("webhooks/commet/", webhook_view(webhooks))]

Plugin: set ``COMMET_WEBHOOK_SECRET`` in settings, route the URLs, connect receivers::

    urlpatterns = [path("webhooks/commet/", include("commet_webhooks.django.urls"))]

    from commet_webhooks.django.signals import subscription_activated
    @receiver(subscription_activated)
    def grant_access(sender, event, **kwargs): ...

``COMMET_WEBHOOK_OPTIONS`` (a dict) passes further keywords to :class:`Webhooks`
(``idempotency_store``, ``retry_on_handler_error``, ``max_body_bytes``, ...).
Under ASGI, Django reads the whole body before any view runs: wrap the ASGI
application with :func:`commet_webhooks.django.asgi.limit_body` so the limit holds.
Adding ``"commet_webhooks.django"`` to ``INSTALLED_APPS`` adds a system check for
the settings.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

try:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.handlers.wsgi import WSGIRequest
    from django.core.signals import setting_changed
    from django.http import HttpRequest, HttpResponse
    from django.views.decorators.csrf import csrf_exempt
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.django", "django", exc) from exc

from .._adapter import (
    BlockingRead,
    answer,
    receive,
    repeated_signature,
    signature_repeated,
    wsgi_body_reader,
)
from ..dispatch import WebhookResponse, Webhooks

__all__ = ["webhook_view", "webhooks_from_settings"]

SyncView = Callable[[HttpRequest], HttpResponse]
AsyncView = Callable[[HttpRequest], Awaitable[HttpResponse]]


def webhook_view(webhooks: Webhooks, *, asynchronous: bool = False) -> SyncView | AsyncView:
    """A CSRF-exempt view that receives Commet webhooks; every method routes to it.

    Both kinds of view work under WSGI and ASGI Django. The default sync view runs
    handlers through :meth:`Webhooks.handle_sync` (under ASGI, Django runs it in a
    worker thread). ``asynchronous=True`` gives an ``async def`` view that awaits
    :meth:`Webhooks.handle`, so async handlers run on the server's event loop --
    the better choice under ASGI.
    """
    if asynchronous:

        async def receive_commet_webhook_async(request: HttpRequest) -> HttpResponse:
            # Django joins repeated header lines with commas, under WSGI and ASGI alike.
            if signature_repeated(request.headers.get("x-commet-signature")):
                return _to_response(repeated_signature(webhooks))
            body = receive(webhooks, request.method or "", _length(request), _body_reader(request))
            if not isinstance(body, WebhookResponse):
                body = await webhooks.handle(body, request.headers)
            return _to_response(body)

        return csrf_exempt(receive_commet_webhook_async)

    def receive_commet_webhook(request: HttpRequest) -> HttpResponse:
        return _answer(webhooks, request)

    return csrf_exempt(receive_commet_webhook)


def _answer(webhooks: Webhooks, request: HttpRequest) -> HttpResponse:
    """The sync view's work: read the raw body, ``handle_sync`` it, answer."""
    reply = answer(
        webhooks, request.method or "", _length(request), request.headers, _body_reader(request)
    )
    return _to_response(reply)


def _length(request: HttpRequest) -> str | None:
    length: str | None = request.META.get("CONTENT_LENGTH")
    return length


def _body_reader(request: HttpRequest) -> BlockingRead:
    # Django's WSGI request caps its stream at CONTENT_LENGTH (0 for a chunked body);
    # the raw input is read instead, within the same PEP 3333 rules.
    if isinstance(request, WSGIRequest):
        return wsgi_body_reader(request.environ)
    # ASGI: Django has already read the whole body before the view runs; wrap the
    # application with commet_webhooks.django.asgi.limit_body so that an oversized
    # one is refused before Django reads it.
    read: BlockingRead = request.read
    return read


def _to_response(reply: WebhookResponse) -> HttpResponse:
    return HttpResponse(reply.body, status=reply.status, headers=dict(reply.headers))


# ------------------------------------------------------------------------ plugin


@functools.lru_cache(maxsize=1)
def webhooks_from_settings() -> Webhooks:
    """The plugin's :class:`Webhooks`, built from settings, sending the Django signals.

    Built on first use and rebuilt when a ``COMMET_WEBHOOK_*`` setting changes.
    """
    from . import signals

    secret = getattr(settings, "COMMET_WEBHOOK_SECRET", None)
    if not secret:
        raise ImproperlyConfigured(
            "COMMET_WEBHOOK_SECRET is not set: add your endpoint's signing secret "
            "(whsec_...) to your Django settings"
        )
    options: dict[str, Any] = dict(getattr(settings, "COMMET_WEBHOOK_OPTIONS", None) or {})
    try:
        webhooks = Webhooks(webhook_secret=secret, **options)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"invalid COMMET_WEBHOOK_* settings: {exc}") from exc
    signals.connect(webhooks)
    return webhooks


def _settings_view(request: HttpRequest) -> HttpResponse:
    return _answer(webhooks_from_settings(), request)


settings_view: SyncView = csrf_exempt(_settings_view)
"""The view behind ``include("commet_webhooks.django.urls")``."""


def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("COMMET_WEBHOOK"):
        webhooks_from_settings.cache_clear()


setting_changed.connect(_reset_on_setting_change, dispatch_uid="commet_webhooks.settings")
