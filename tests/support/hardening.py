"""Every adapter driven in-process with raw, hostile requests, plus the real-server table.

Each :class:`Driver` takes a request as raw parts (method, header lines as bytes,
body, and an optional forged ``Content-Length``) and returns the status and body the
adapter answered, without any client in between rewriting the request:

* the ASGI apps (bare, Starlette, FastAPI, Django under ASGI) get a direct ASGI call;
* the WSGI apps (bare, Flask) get an environ built by werkzeug's ``EnvironBuilder``;
* Django's WSGI views go through Django's test ``Client`` with CSRF checks enforced;
* aiohttp runs under ``aiohttp.test_utils.TestServer`` and is called with ``TestClient``,
  or with bytes written by hand for requests that client refuses to send.

The real servers come from the adapters' table, :mod:`support.adapters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from commet_webhooks import Webhooks

from . import adapters
from .recorders import Recorder

SECRET: str = adapters.SECRET  # the Django plugin's settings use this one too
LIMIT = 262_144  # room for deep nesting and huge numbers in-process
TIMEOUT = 30.0

Headers = list[tuple[bytes, bytes]]


def make_webhooks(recorder: Recorder, *, retry_on_handler_error: bool = True) -> Webhooks:
    """The receiver every in-process driver serves (retries on handler errors: 500)."""
    webhooks = Webhooks(SECRET, max_body_bytes=LIMIT, retry_on_handler_error=retry_on_handler_error)
    return recorder.attach(webhooks)


# ------------------------------------------------------------------- drivers


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


SendFn = Callable[[str, Headers, bytes, "bytes | None"], Reply]


@dataclass
class Driver:
    """One adapter, in-process: ``send(method, headers, body, content_length)``.

    ``content_length`` None means "the true length"; pass ``b""``-free bytes to forge
    one. ``exact_length`` is True where the transport cannot deliver fewer bytes than
    declared (the test client's payload, a socket that would just wait for more).
    """

    name: str
    recorder: Recorder
    send_raw: SendFn
    exact_length: bool = False
    retries_handler_errors: bool = True
    limit: int = LIMIT

    def send(
        self,
        method: str,
        headers: Headers,
        body: bytes,
        content_length: bytes | None = None,
    ) -> Reply:
        return self.send_raw(method, headers, body, content_length)


def with_length(headers: Headers, body: bytes, content_length: bytes | None) -> Headers:
    """``headers`` plus one ``Content-Length`` line (the true one unless forged)."""
    length = str(len(body)).encode() if content_length is None else content_length
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", length)]


# ------------------------------------------------------------------ ASGI


class LoopThread:
    """One event loop on a thread of its own; ``run(coro)`` blocks for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hardening-loop")
        self.thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(_awaited(coro), self.loop)
        return future.result(TIMEOUT)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


async def _awaited(coro: Awaitable[Any]) -> Any:
    return await coro


async def call_asgi(app: Any, method: str, path: str, headers: Headers, body: bytes) -> Reply:
    """One HTTP request straight into an ASGI app; the body arrives in small chunks."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower(), value) for name, value in headers],  # as servers do
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] or [b""]
    pending = list(enumerate(chunks))
    forever = asyncio.Event()  # after the body, receive() waits like a live connection

    async def receive() -> dict[str, Any]:
        if pending:
            index, chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        await forever.wait()
        return {"type": "http.disconnect"}

    status: list[int] = []
    parts: list[bytes] = []

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await asyncio.wait_for(app(scope, receive, send), TIMEOUT)
    assert status, "the app sent no response"
    return Reply(status[0], b"".join(parts))


def asgi_driver(name: str, app: Any, path: str, recorder: Recorder, loop: LoopThread) -> Driver:
    def send(method: str, headers: Headers, body: bytes, length: bytes | None) -> Reply:
        result: Reply = loop.run(
            call_asgi(app, method, path, with_length(headers, body, length), body)
        )
        return result

    return Driver(name, recorder, send)


# ------------------------------------------------------------------ WSGI


def wsgi_driver(name: str, app: Any, path: str, recorder: Recorder) -> Driver:
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    def send(method: str, headers: Headers, body: bytes, length: bytes | None) -> Reply:
        builder = EnvironBuilder(path=path, method=method, data=body)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        for key, value in headers:
            name = key.decode("latin-1").upper().replace("-", "_")
            if name in ("CONTENT_LENGTH", "CONTENT_TYPE"):
                environ[name] = value.decode("latin-1")
                continue
            # Repeated lines are joined, as WSGI servers do.
            previous = environ.get("HTTP_" + name)
            text = value.decode("latin-1")
            environ["HTTP_" + name] = text if previous is None else f"{previous},{text}"
        environ["CONTENT_LENGTH"] = str(len(body)) if length is None else length.decode("latin-1")
        app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
        try:
            data = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        return Reply(int(status.split(" ", 1)[0]), data)

    return Driver(name, recorder, send)


# ---------------------------------------------------------------- Django


def django_client_driver(name: str, path: str, recorder: Recorder) -> Driver:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)

    def send(method: str, headers: Headers, body: bytes, length: bytes | None) -> Reply:
        extra: dict[str, str] = {}
        content_type = "application/octet-stream"
        for key, value in headers:
            name = key.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            if name == "CONTENT_TYPE":
                content_type = text
            elif name != "CONTENT_LENGTH":
                previous = extra.get("HTTP_" + name)
                extra["HTTP_" + name] = text if previous is None else f"{previous},{text}"
        if length is not None:
            extra["CONTENT_LENGTH"] = length.decode("latin-1")
        response = client.generic(method, path, body, content_type=content_type, **extra)
        return Reply(response.status_code, response.content)

    return Driver(name, recorder, send, exact_length=True)


# --------------------------------------------------------------- aiohttp


def aiohttp_driver(recorder: Recorder, loop: LoopThread) -> tuple[Driver, Callable[[], None]]:
    from aiohttp import ClientResponseError, web
    from aiohttp.test_utils import TestClient, TestServer
    from multidict import CIMultiDict

    from commet_webhooks.aiohttp import webhook_handler

    async def start() -> TestClient[Any, Any]:
        app = web.Application()
        app.router.add_route("*", "/webhooks/commet", webhook_handler(make_webhooks(recorder)))
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    client: TestClient[Any, Any] = loop.run(start())

    async def request(method: str, headers: Headers, body: bytes) -> Reply:
        multi: CIMultiDict[str] = CIMultiDict()
        for key, value in headers:
            multi.add(key.decode("latin-1"), value.decode("latin-1"))
        try:
            async with client.request(
                method,
                "/webhooks/commet",
                data=body,
                headers=multi,
                skip_auto_headers={"Content-Type"},
            ) as response:
                return Reply(response.status, await response.read())
        except ClientResponseError as exc:
            # The server's own error answer, which the client could not parse (aiohttp's
            # server sends a body with its 400 to a HEAD it could not decode).
            return Reply(exc.status, b"")

    async def raw(method: str, headers: Headers, body: bytes) -> Reply:
        # aiohttp's client refuses a malformed Content-Length or a control byte in a
        # header: such requests are written by hand.
        reader, writer = await asyncio.open_connection(client.host, client.port)
        try:
            head = [f"{method} /webhooks/commet HTTP/1.1".encode(), b"host: 127.0.0.1"]
            head += [k + b": " + v for k, v in headers]
            writer.write(b"\r\n".join([*head, b"connection: close", b"", b""]) + body)
            await writer.drain()
            return await asyncio.wait_for(read_http_reply(reader), TIMEOUT)
        finally:
            writer.close()

    def send(method: str, headers: Headers, body: bytes, length: bytes | None) -> Reply:
        by_hand = length is not None or any(_control_byte(v) for _, v in headers)
        exchange = raw if by_hand else request
        result: Reply = loop.run(exchange(method, with_length(headers, body, length), body))
        return result

    def close() -> None:
        loop.run(client.close())

    return Driver("aiohttp", recorder, send, exact_length=True), close


def _control_byte(value: bytes) -> bool:
    return any((b < 0x20 and b != 0x09) or b == 0x7F for b in value)


async def read_http_reply(reader: asyncio.StreamReader) -> Reply:
    """Status and body of one HTTP/1.1 response; the body by its ``Content-Length``.

    Reading stops there: a server may keep the connection open to drain a request
    body it never read.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1."), f"not an HTTP response: {head[:200]!r}"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return Reply(int(lines[0].split()[1]), await reader.readexactly(length))


# ------------------------------------------------------------------ table


IN_PROCESS = [
    "asgi",
    "starlette",
    "fastapi",
    "django-asgi",
    "django-asgi-sync-view",
    "wsgi",
    "flask",
    "django-wsgi",
    "django-wsgi-async-view",
    "django-plugin",
    "aiohttp",
]


@contextlib.contextmanager
def in_process(name: str, loop: LoopThread) -> Iterator[Driver]:
    """The driver called ``name``, with its own recorder, torn down afterwards."""
    recorder = Recorder()
    if name == "asgi":
        from commet_webhooks.asgi import WebhookApp

        yield asgi_driver(name, WebhookApp(make_webhooks(recorder)), "/any", recorder, loop)
    elif name == "starlette":
        from starlette.applications import Starlette

        from commet_webhooks.starlette import webhook_route

        app = Starlette(routes=[webhook_route(make_webhooks(recorder))])
        yield asgi_driver(name, app, "/webhooks/commet", recorder, loop)
    elif name == "fastapi":
        from fastapi import FastAPI

        from commet_webhooks.fastapi import webhook_router

        api = FastAPI()
        api.include_router(webhook_router(make_webhooks(recorder)))
        yield asgi_driver(name, api, "/webhooks/commet", recorder, loop)
    elif name == "wsgi":
        from commet_webhooks.wsgi import WebhookApp as WSGIApp

        yield wsgi_driver(name, WSGIApp(make_webhooks(recorder)), "/any", recorder)
    elif name == "flask":
        from flask import Flask

        from commet_webhooks.flask import webhook_blueprint

        flask_app = Flask("hardening")
        flask_app.register_blueprint(webhook_blueprint(make_webhooks(recorder)))
        yield wsgi_driver(name, flask_app, "/webhooks/commet", recorder)
    elif name == "aiohttp":
        driver, close = aiohttp_driver(recorder, loop)
        try:
            yield driver
        finally:
            close()
    else:
        with _django(name, recorder, loop) as driver:
            yield driver


@contextlib.contextmanager
def _django(name: str, recorder: Recorder, loop: LoopThread) -> Iterator[Driver]:
    adapters.django_setup()
    from django.urls import include

    from commet_webhooks.django import webhook_view

    route = f"hardening-{name}/"
    if name == "django-plugin":
        # The plugin runs on the adapters' settings: their body limit, no retry on errors.
        with (
            adapters.django_signal_recording(recorder),
            adapters.django_route(route, include("commet_webhooks.django.urls")),
        ):
            driver = django_client_driver(name, "/" + route, recorder)
            driver.retries_handler_errors = False
            driver.limit = adapters.LIMIT
            yield driver
        return
    asynchronous = name in ("django-asgi", "django-wsgi-async-view")
    view = webhook_view(make_webhooks(recorder), asynchronous=asynchronous)
    with adapters.django_route(route, view):
        if name.startswith("django-asgi"):
            from django.core.asgi import get_asgi_application

            yield asgi_driver(name, get_asgi_application(), "/" + route, recorder, loop)
        else:
            yield django_client_driver(name, "/" + route, recorder)


# ------------------------------------------------------------ raw sockets


def raw_exchange(
    url: str, method: str, headers: Headers, body: bytes, *, timeout: float = TIMEOUT
) -> Reply:
    """One request written byte for byte to a real server; the reply parsed by hand.

    A server that drops the connection without answering, or does not answer within
    ``timeout``, fails the caller with an ``OSError``.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    head = [f"{method} {parts.path} HTTP/1.1".encode(), b"host: 127.0.0.1"]
    head += [k + b": " + v for k, v in headers]
    request = b"\r\n".join([*head, b"connection: close", b"", b""]) + body
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        # A server may answer and close before reading everything: read its answer anyway.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        with sock.makefile("rb") as stream:
            status_line = stream.readline(65_536)
            assert status_line.startswith(b"HTTP/1."), f"no HTTP answer: {status_line!r}"
            length = 0
            while (line := stream.readline(65_536)) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = b"" if method == "HEAD" else stream.read(length)
    return Reply(int(status_line.split()[1]), data)
