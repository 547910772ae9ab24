"""Every framework adapter behind a real server on 127.0.0.1, from one table.

``ADAPTERS`` lists each adapter with the server that runs it: uvicorn for the ASGI
ones (FastAPI, Starlette, the bare ASGI app, Django under ASGI), werkzeug's WSGI
server for Flask, the bare WSGI app and Django under WSGI, and aiohttp's own runner.
The ``server`` fixture starts one of them per module and yields a :class:`Server`
that records which typed event each handler received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from commet_webhooks import WebhookEvent, Webhooks
from commet_webhooks.events import EVENT_TYPES

SECRET = "whsec_adapter_tests_5b9e1d"
LIMIT = 16_384  # max_body_bytes for every server here
URLCONF = "commet_webhooks_adapter_test_urls"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- recording


@dataclass
class Recorder:
    """What the handlers saw, by event id: the specific handler and the catch-all."""

    specific: dict[str, WebhookEvent] = field(default_factory=dict)
    catch_all: dict[str, WebhookEvent] = field(default_factory=dict)

    def webhooks(self) -> Webhooks:
        """A ``Webhooks`` with an async handler per modelled type and a sync catch-all."""
        webhooks = Webhooks(SECRET, max_body_bytes=LIMIT, on_payload=self.record_any)
        for name in EVENT_TYPES:
            webhooks.on(name)(self.record_specific)
        return webhooks

    async def record_specific(self, event: WebhookEvent) -> None:
        self.specific[str(event.id)] = event

    def record_any(self, event: WebhookEvent) -> None:
        self.catch_all[str(event.id)] = event


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


# ------------------------------------------------------------------- servers


@contextlib.contextmanager
def serve_asgi(app: Any, path: str, *, lifespan: str = "off") -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yield the URL of ``path``."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started, thread, "uvicorn")
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)


@contextlib.contextmanager
def serve_wsgi(app: Any, path: str) -> Iterator[str]:
    """Run ``app`` under werkzeug's threaded WSGI server; yield the URL of ``path``."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STARTUP_TIMEOUT)


@contextlib.contextmanager
def serve_aiohttp(make_app: Callable[[], Any], path: str) -> Iterator[str]:
    """Run an ``aiohttp.web`` app with its ``AppRunner`` on a private loop in a thread."""
    from aiohttp import web

    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        runner = web.AppRunner(make_app())
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="aiohttp", daemon=True)
    thread.start()
    try:
        _wait_until(ready.is_set, thread, "aiohttp")
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(STARTUP_TIMEOUT)


def _wait_until(condition: Callable[[], bool], thread: threading.Thread, what: str) -> None:
    event = threading.Event()
    for _ in range(int(STARTUP_TIMEOUT / 0.05)):
        if condition():
            return
        if not thread.is_alive():
            raise RuntimeError(f"{what} exited before it started")
        event.wait(0.05)
    raise TimeoutError(f"{what} did not start within {STARTUP_TIMEOUT} s")


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
        recorder.specific[str(event.id)] = event

    def on_any(sender: type, event: WebhookEvent, **kwargs: Any) -> None:
        recorder.catch_all[str(event.id)] = event

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
    app.include_router(webhook_router(recorder.webhooks()), prefix="/api")
    return serve_asgi(app, "/api/webhooks/commet")


def _starlette(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from starlette.applications import Starlette

    from commet_webhooks.starlette import webhook_route

    return serve_asgi(Starlette(routes=[webhook_route(recorder.webhooks())]), "/webhooks/commet")


def _asgi(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from commet_webhooks.asgi import WebhookApp

    # Served on its own, with the lifespan protocol on.
    return serve_asgi(WebhookApp(recorder.webhooks()), "/any/path", lifespan="on")


def _flask(*, flask_hooks: bool) -> Callable[[Recorder], contextlib.AbstractContextManager[str]]:
    def serve(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
        from flask import Flask

        from commet_webhooks.flask import webhook_blueprint

        app = Flask(__name__)
        blueprint = webhook_blueprint(recorder.webhooks(), flask_hooks=flask_hooks)
        app.register_blueprint(blueprint, url_prefix="/hooks")
        return serve_wsgi(app, "/hooks/webhooks/commet")

    return serve


def _wsgi(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from commet_webhooks.wsgi import WebhookApp

    return serve_wsgi(WebhookApp(recorder.webhooks()), "/any/path")


def _aiohttp(recorder: Recorder) -> contextlib.AbstractContextManager[str]:
    from aiohttp import web

    from commet_webhooks.aiohttp import webhook_handler

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/webhooks/commet", webhook_handler(recorder.webhooks()))
        return app

    return serve_aiohttp(make_app, "/webhooks/commet")


def _django(*, server: str, asynchronous: bool) -> Callable[[Recorder], Any]:
    @contextlib.contextmanager
    def serve(recorder: Recorder) -> Iterator[str]:
        django_setup()
        from commet_webhooks.django import webhook_view

        route = f"{server}-{'async' if asynchronous else 'sync'}/hook/"
        view = webhook_view(recorder.webhooks(), asynchronous=asynchronous)
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
    before any view runs, so the adapter cannot stop reading early: it still answers
    413, once the body is complete. (Django under ASGI buffers, but is served here
    wrapped in ``commet_webhooks.django.asgi.limit_body``, as its docs say to.)
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


# Options of an adapter that change how it is served: run through this directory's
# tests too (the hardening tests drive ``ADAPTERS`` only, one row per adapter).
VARIANTS = [Adapter("flask-hooks", _flask(flask_hooks=True))]

ALL = ADAPTERS + VARIANTS
STREAMING = [a for a in ALL if a.streams_body]


def _run(adapter: Adapter) -> contextlib.AbstractContextManager[Server]:
    @contextlib.contextmanager
    def running() -> Iterator[Server]:
        recorder = Recorder()
        with adapter.serve(recorder) as url:
            yield Server(adapter, url, recorder)

    return running()


@pytest.fixture(scope="module", params=ALL, ids=[a.name for a in ALL])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each adapter in turn, running under its real server."""
    with _run(request.param) as running:
        yield running


@pytest.fixture(scope="module", params=STREAMING, ids=[a.name for a in STREAMING])
def streaming_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The adapters that read the body themselves, so can stop reading at the limit."""
    with _run(request.param) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as http:
        yield http


@pytest.fixture
def webhook_secret() -> str:
    return SECRET


@pytest.fixture
def body_limit() -> int:
    return LIMIT


@pytest.fixture
def django_configured() -> None:
    """Django configured with the test settings (once per process)."""
    django_setup()


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def asgi_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``asgi_server(app, path)``: run an ASGI app under uvicorn, yield the URL of ``path``."""
    return serve_asgi
