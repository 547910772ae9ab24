"""Every framework adapter behind a real server on 127.0.0.1, from one table.

``ADAPTERS`` lists each adapter with the server that runs it: uvicorn for the ASGI
ones (FastAPI, Starlette, the bare ASGI app, Django under ASGI), werkzeug's WSGI
server for Flask, the bare WSGI app and Django under WSGI, and aiohttp's own runner.
:func:`run_adapter` starts one and yields a :class:`Server` whose :class:`Recorder`
holds the typed events each handler received.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from commet_webhooks import WebhookEvent, Webhooks

from .recorders import Recorder
from .servers import serve_aiohttp, serve_asgi, serve_wsgi

__all__ = [
    "ADAPTERS",
    "ALL",
    "LIMIT",
    "SECRET",
    "STREAMING",
    "VARIANTS",
    "Adapter",
    "Server",
    "adapter_webhooks",
    "django_route",
    "django_setup",
    "django_signal_recording",
    "run_adapter",
]

SECRET = "whsec_adapter_tests_5b9e1d"
LIMIT = 16_384  # max_body_bytes for every server here
URLCONF = "commet_webhooks_adapter_test_urls"


def adapter_webhooks(recorder: Recorder) -> Webhooks:
    """The receiver every adapter serves: ``recorder``'s handlers, the body limit."""
    return recorder.attach(Webhooks(SECRET, max_body_bytes=LIMIT))


@dataclass
class Server:
    """A running adapter: where to POST, and what its handlers recorded."""

    adapter: Adapter
    url: str
    recorder: Recorder

    @property
    def host_port(self) -> tuple[str, int]:
        parsed = httpx.URL(self.url)
        return str(parsed.host), int(parsed.port or 80)

    @property
    def path(self) -> str:
        return httpx.URL(self.url).raw_path.decode("ascii")


# -------------------------------------------------------------------- django


def django_setup() -> types.ModuleType:
    """Configure Django once per process; return the (mutable) test URLconf module."""
    import django
    from django.conf import settings

    urls = sys.modules.get(URLCONF)
    if urls is None:
        urls = types.ModuleType(URLCONF)
        urls.urlpatterns = []  # type: ignore[attr-defined]
        sys.modules[URLCONF] = urls
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="adapter-tests-not-secret",
            ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
            ROOT_URLCONF=URLCONF,
            INSTALLED_APPS=["commet_webhooks.django"],
            MIDDLEWARE=[
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
            ],
            DATABASES={},
            COMMET_WEBHOOK_SECRET=SECRET,
            COMMET_WEBHOOK_OPTIONS={"max_body_bytes": LIMIT},
        )
        django.setup()
    return urls


@contextlib.contextmanager
def django_route(route: str, view: Any) -> Iterator[None]:
    """Add ``route`` to the test URLconf for the duration of the block."""
    from django.urls import clear_url_caches, path

    urls = django_setup()
    pattern = path(route, view)
    urls.urlpatterns.append(pattern)
    clear_url_caches()
    try:
        yield
    finally:
        urls.urlpatterns.remove(pattern)
        clear_url_caches()


@contextlib.contextmanager
def django_signal_recording(recorder: Recorder) -> Iterator[None]:
    """Record the plugin's signals: each event type's own, and the catch-all."""
    from commet_webhooks.django import signals

    def on_specific(sender: type, event: WebhookEvent, **kwargs: Any) -> None:
        assert sender is type(event)
        recorder.specific.append(event)

    def on_any(sender: type, event: WebhookEvent, **kwargs: Any) -> None:
        recorder.catch_all.append(event)

    for signal in signals.SIGNALS.values():
        signal.connect(on_specific, weak=False)
    signals.webhook_received.connect(on_any, weak=False)
    try:
        yield
    finally:
        for signal in signals.SIGNALS.values():
            signal.disconnect(on_specific)
        signals.webhook_received.disconnect(on_any)


# -------------------------------------------------------------------- table


def _fastapi(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from fastapi import FastAPI

    from commet_webhooks.fastapi import webhook_router

    app = FastAPI()
    app.include_router(webhook_router(adapter_webhooks(recorder)), prefix="/api")
    return serve_asgi(app, "/api/webhooks/commet")


def _starlette(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from starlette.applications import Starlette

    from commet_webhooks.starlette import webhook_route

    return serve_asgi(
        Starlette(routes=[webhook_route(adapter_webhooks(recorder))]), "/webhooks/commet"
    )


def _asgi(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from commet_webhooks.asgi import WebhookApp

    # Served on its own, with the lifespan protocol on.
    return serve_asgi(WebhookApp(adapter_webhooks(recorder)), "/any/path", lifespan="on")


def _flask(*, flask_hooks: bool) -> Callable[[Recorder], contextlib.AbstractContextManager[str]]:
    def serve(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
        from flask import Flask

        from commet_webhooks.flask import webhook_blueprint

        app = Flask(__name__)
        blueprint = webhook_blueprint(adapter_webhooks(recorder), flask_hooks=flask_hooks)
        app.register_blueprint(blueprint, url_prefix="/hooks")
        return serve_wsgi(app, "/hooks/webhooks/commet")

    return serve


def _wsgi(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from commet_webhooks.wsgi import WebhookApp

    return serve_wsgi(WebhookApp(adapter_webhooks(recorder)), "/any/path")


def _aiohttp(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from aiohttp import web

    from commet_webhooks.aiohttp import webhook_handler

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/webhooks/commet", webhook_handler(adapter_webhooks(recorder)))
        return app

    return serve_aiohttp(make_app, "/webhooks/commet")


def _django(*, server: str, asynchronous: bool) -> Callable[[Recorder], Any]:
    @contextlib.contextmanager
    def serve(recorder: Recorder) -> Iterator[str]:
        django_setup()
        from commet_webhooks.django import webhook_view

        route = f"{server}-{'async' if asynchronous else 'sync'}/hook/"
        view = webhook_view(adapter_webhooks(recorder), asynchronous=asynchronous)
        with django_route(route, view), _django_server(server, "/" + route) as url:
            yield url

    return serve


@contextlib.contextmanager
def _django_plugin(recorder: Recorder) -> Iterator[str]:
    from django.urls import include

    django_setup()
    with (
        django_signal_recording(recorder),
        django_route("webhooks/commet/", include("commet_webhooks.django.urls")),
        _django_server("wsgi", "/webhooks/commet/") as url,
    ):
        yield url


def _django_server(server: str, path: str) -> contextlib.AbstractContextManager[str]:
    if server == "asgi":
        from django.core.asgi import get_asgi_application

        from commet_webhooks.django.asgi import limit_body

        # As documented: Django under ASGI is wrapped so the limit holds before it
        # spools the body.
        return serve_asgi(limit_body(get_asgi_application(), path), path)
    from django.core.wsgi import get_wsgi_application

    return serve_wsgi(get_wsgi_application(), path)


@dataclass(frozen=True)
class Adapter:
    """One adapter under one server.

    ``streams_body`` is False where the framework buffers the whole request body
    before any view runs (Django's ASGI handler), so the adapter cannot stop reading
    early: it still answers 413, once the body is complete.
    """

    name: str
    serve: Callable[[Recorder], contextlib.AbstractContextManager[str]]
    streams_body: bool = True


ADAPTERS = [
    Adapter("fastapi", _fastapi),
    Adapter("starlette", _starlette),
    Adapter("asgi", _asgi),
    Adapter("flask", _flask(flask_hooks=False)),
    Adapter("wsgi", _wsgi),
    Adapter("aiohttp", _aiohttp),
    Adapter("django-wsgi", _django(server="wsgi", asynchronous=False)),
    Adapter("django-asgi", _django(server="asgi", asynchronous=True)),
    Adapter("django-wsgi-async-view", _django(server="wsgi", asynchronous=True)),
    Adapter("django-asgi-sync-view", _django(server="asgi", asynchronous=False)),
    Adapter("django-plugin", _django_plugin),
]


# Options of an adapter that change how it is served: run through the adapter tests
# too (the hardening tests drive ``ADAPTERS`` only, one row per adapter).
VARIANTS = [Adapter("flask-hooks", _flask(flask_hooks=True))]

ALL = ADAPTERS + VARIANTS
STREAMING = [a for a in ALL if a.streams_body]


def run_adapter(adapter: Adapter) -> contextlib.AbstractContextManager[Server]:
    @contextlib.contextmanager
    def running() -> Iterator[Server]:
        recorder = Recorder()
        with adapter.serve(recorder) as url:
            yield Server(adapter, url, recorder)

    return running()
