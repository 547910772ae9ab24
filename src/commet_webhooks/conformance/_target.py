"""Where deliveries go: an ASGI or WSGI app in this process, an aiohttp app, or a URL.

Every kind of receiver answers the same two calls: :meth:`Receiver.submit` (start a
POST, get a future, so the suite can send concurrently) and :meth:`Receiver.post`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
import inspect
import itertools
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..dispatch import SIGNATURE_HEADER
from ..testing import sample_event, signed_request
from ._deps import httpx

__all__ = [
    "DEFAULT_PATH",
    "Receiver",
    "ReceiverUnreachable",
    "TargetError",
    "load_object",
    "open_receiver",
]

DEFAULT_PATH = "/webhooks/commet"
_BASE_URL = "http://127.0.0.1"  # a host Django's ALLOWED_HOSTS and friends accept
_T = TypeVar("_T")
_instances = itertools.count(2)


class TargetError(Exception):
    """The receiver cannot be loaded, started or reached; the message says what to change."""


class ReceiverUnreachable(TargetError):
    """Nothing answers at the receiver's URL."""


class Receiver:
    """One running instance of a webhook receiver that raw bodies can be POSTed to.

    >>> with open_receiver("myapp.main:app", secret="whsec_...") as receiver:
    ...     assert receiver.deliver("payment.failed").status_code == 200

    Use it as a context manager (or call :meth:`close`): in-process apps get their
    lifespan started and stopped, servers their sockets closed.
    """

    description = "receiver"

    def __init__(self, *, secret: str | None = None, timeout: float = 30.0) -> None:
        self.secret = secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

    def submit(
        self, body: bytes, headers: Mapping[str, str]
    ) -> concurrent.futures.Future[httpx.Response]:
        """Start POSTing ``body`` with ``headers``; the future holds the answer."""
        raise NotImplementedError

    def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST ``body`` with ``headers`` exactly as given and return the answer."""
        return self.submit(body, headers).result(self.timeout + 1)

    def post_alone(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """:meth:`post` on a connection of its own, closed after the answer.

        For a request the server may answer without reading the body (a 413): the
        server may then close that connection, and no later request must reuse it.
        """
        return self.post(body, headers)

    def deliver(
        self,
        event: str | Mapping[str, Any],
        *,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> httpx.Response:
        """Sign and POST an event: a type name (a realistic sample) or a whole envelope.

        ``overrides`` go to :func:`commet_webhooks.testing.sample_event`; ``secret``
        defaults to the receiver's own (pass another one to forge a delivery).
        """
        key = secret if secret is not None else self.secret
        if key is None:
            raise ValueError("no secret: pass secret= here or when opening the receiver")
        envelope = sample_event(event, **overrides) if isinstance(event, str) else event
        body, signed = signed_request(envelope, key, headers=headers)
        return self.post(body, signed)

    def deliver_unsigned(self, event: str | Mapping[str, Any], **overrides: Any) -> httpx.Response:
        """POST an event with no signature header at all."""
        envelope = sample_event(event, **overrides) if isinstance(event, str) else event
        body, headers = signed_request(envelope, "whsec_unused")
        del headers[SIGNATURE_HEADER]
        return self.post(body, headers)

    def close(self) -> None:
        """Stop what :func:`open_receiver` started; safe to call twice."""

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ------------------------------------------------------------------ by URL


class UrlReceiver(Receiver):
    """A receiver already running somewhere, reached over HTTP."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"expected an http:// or https:// URL, got {url!r}")
        self.url = url
        self.description = url
        self._client = httpx.Client(timeout=self.timeout)
        try:  # any answer will do (a 405 to GET is typical): is anything listening?
            self._client.get(url)
        except httpx.HTTPError as exc:
            self._client.close()
            raise ReceiverUnreachable(
                f"cannot reach {url}: {type(exc).__name__}: {exc}. Is the receiver running?"
            ) from None
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="commet-post")

    def submit(
        self, body: bytes, headers: Mapping[str, str]
    ) -> concurrent.futures.Future[httpx.Response]:
        return self._pool.submit(self._send, body, dict(headers))

    def post_alone(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        # gunicorn, for one, drains at most 64 KiB of a body the app did not read and
        # then closes the keep-alive connection without announcing it.
        with httpx.Client(timeout=self.timeout) as client:
            return self._send(body, dict(headers), client)

    def _send(
        self, body: bytes, headers: dict[str, str], client: httpx.Client | None = None
    ) -> httpx.Response:
        try:
            return (client or self._client).post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TargetError(f"no answer from {self.url} within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise TargetError(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


# ------------------------------------------------------------------ WSGI, in process


class WsgiReceiver(Receiver):
    """A WSGI app (Flask, Django, bare WSGI) called in this process."""

    def __init__(self, app: Any, path: str = DEFAULT_PATH, **options: Any) -> None:
        super().__init__(**options)
        self.description = f"WSGI app {_name(app)} (in process), POST {path}"
        self.path = path
        transport = httpx.WSGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.Client(transport=transport, base_url=_BASE_URL, timeout=self.timeout)
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="commet-wsgi")

    def submit(
        self, body: bytes, headers: Mapping[str, str]
    ) -> concurrent.futures.Future[httpx.Response]:
        return self._pool.submit(self._send, body, dict(headers))

    def _send(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return self._client.post(self.path, content=body, headers=headers)
        except Exception as exc:  # a server answers 500 when the app raises
            return _crashed(exc)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


# ------------------------------------------------------------------ ASGI, in process


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class _Lifespan:
    """Runs an ASGI app's lifespan protocol, so apps that open pools at startup work.

    An app that does not speak lifespan (it raises or returns at once) is fine.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._to_app: asyncio.Queue[dict[str, Any]] | None = None
        self._from_app: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._to_app, self._from_app = to_app, from_app
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.ensure_future(self._run(scope, to_app.get, from_app.put))
        await to_app.put({"type": "lifespan.startup"})
        message = await self._next(from_app)
        if message is None:
            self._task = None  # no lifespan support: nothing to shut down
        elif message["type"] == "lifespan.startup.failed":
            raise TargetError(f"the app's startup failed: {message.get('message') or 'no reason'}")

    async def shutdown(self) -> None:
        if self._task is None or self._to_app is None or self._from_app is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._next(self._from_app)
        self._task = None

    async def _run(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._app(scope, receive, send)
        except Exception:  # an app without lifespan support may raise on the scope
            return

    async def _next(self, queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any] | None:
        assert self._task is not None
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        return None


class AsgiReceiver(Receiver):
    """An ASGI app (FastAPI, Starlette, Django ASGI, ...) called in this process."""

    def __init__(self, app: Any, path: str = DEFAULT_PATH, **options: Any) -> None:
        super().__init__(**options)
        self.description = f"ASGI app {_name(app)} (in process), POST {path}"
        self.path = path
        self._loop = _LoopThread("commet-asgi")
        self._lifespan = _Lifespan(app)
        try:
            self._loop.run(self._lifespan.startup(), self.timeout)
        except BaseException:
            self._loop.stop()
            raise
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(
            transport=transport, base_url=_BASE_URL, timeout=self.timeout
        )
        self._closed = False

    def submit(
        self, body: bytes, headers: Mapping[str, str]
    ) -> concurrent.futures.Future[httpx.Response]:
        return self._loop.submit(self._send(body, dict(headers)))

    async def _send(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return await self._client.post(self.path, content=body, headers=headers)
        except Exception as exc:  # a server answers 500 when the app raises
            return _crashed(exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._client.aclose(), self.timeout)
            self._loop.run(self._lifespan.shutdown(), self.timeout)
        finally:
            self._loop.stop()


# ------------------------------------------------------------------ aiohttp, on loopback


class AiohttpReceiver(UrlReceiver):
    """An ``aiohttp.web.Application`` served on a free loopback port in this process."""

    def __init__(self, app: Any, path: str = DEFAULT_PATH, **options: Any) -> None:
        from aiohttp import web

        self._loop = _LoopThread("commet-aiohttp")
        timeout = float(options.get("timeout", 30.0))

        async def start() -> tuple[web.AppRunner, int]:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, int(runner.addresses[0][1])

        try:
            self._runner, port = self._loop.run(start(), timeout)
        except BaseException:
            self._loop.stop()
            raise
        super().__init__(f"http://127.0.0.1:{port}{path}", **options)
        self.description = f"aiohttp app (in process, {self.url})"

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            super().close()
            self._loop.run(self._runner.cleanup(), self.timeout)
        finally:
            self._loop.stop()


# ------------------------------------------------------------------ loading


def open_receiver(
    target: Any,
    *,
    secret: str | None = None,
    path: str = DEFAULT_PATH,
    timeout: float = 30.0,
) -> Receiver:
    """A :class:`Receiver` for ``target``.

    ``target`` is a URL (``http://127.0.0.1:8000/webhooks/commet``), an import string
    (``myapp.main:app``, ``path/to/app.py:app``; a zero-argument factory is called), or
    an app object: ASGI, WSGI or ``aiohttp.web.Application``. In-process apps receive
    their deliveries at ``path``.
    """
    if isinstance(target, str) and "://" in target:
        return UrlReceiver(target, secret=secret, timeout=timeout)
    app = load_app(target) if isinstance(target, str) else _call_factory(target)
    options: dict[str, Any] = {"secret": secret, "timeout": timeout}
    if _is_aiohttp(app):
        return AiohttpReceiver(app, path, **options)
    if _is_async_callable(app):
        return AsgiReceiver(app, path, **options)
    if callable(app):
        return WsgiReceiver(app, path, **options)
    raise TargetError(f"{_name(app)} is neither an ASGI app, a WSGI app nor an aiohttp Application")


def load_app(spec: str, *, fresh: bool = False) -> Any:
    """Import ``module:attribute`` and return the app (calling a zero-argument factory).

    ``fresh`` executes the module again under a private name: a second, independent
    instance of a module-level app, as a second worker process would have.
    """
    return _call_factory(load_object(spec, fresh=fresh))


def load_object(spec: str, *, fresh: bool = False) -> Any:
    """Import ``module:attribute`` (or ``path/to/file.py:attribute``) and return it."""
    module_part, sep, attribute = spec.partition(":")
    if not sep or not module_part or not attribute:
        raise TargetError(f"expected MODULE:ATTRIBUTE (e.g. myapp.main:app), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` and uvicorn do
    module = _import(module_part, fresh)
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TargetError(f"{module_part} has no attribute {attribute!r}") from None
    return value


def _import(module_part: str, fresh: bool) -> ModuleType:
    is_file = module_part.endswith(".py") or "/" in module_part or os.sep in module_part
    try:
        if is_file:
            path = Path(module_part).resolve()
            if not path.is_file():
                raise TargetError(f"no such file: {module_part}")
            name = "_commet_app_" + "_".join(path.with_suffix("").parts[-2:]).replace("-", "_")
            if str(path.parent) not in sys.path:
                sys.path.append(str(path.parent))  # its sibling modules, as `python file.py`
            return _exec_file(name, path, fresh)
        if not fresh:
            return importlib.import_module(module_part)
        found = importlib.util.find_spec(module_part)
        if found is None or found.origin is None:
            raise TargetError(f"cannot find module {module_part!r}")
        return _exec_file(module_part, Path(found.origin), fresh=True)
    except TargetError:
        raise
    except ModuleNotFoundError as exc:
        raise TargetError(
            f"cannot import {module_part!r}: {exc} (run from your project's directory)"
        ) from None
    except SystemExit as exc:
        raise TargetError(f"importing {module_part} exited: {exc.code}") from None
    except Exception as exc:
        raise TargetError(f"importing {module_part} failed: {type(exc).__name__}: {exc}") from exc


def _exec_file(name: str, path: Path, fresh: bool) -> ModuleType:
    if fresh:
        name = f"{name}__instance{next(_instances)}"
    elif name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _is_factory(value: Any) -> bool:
    """A plain function with no required parameter (an app function takes 2 or 3)."""
    if not inspect.isfunction(value) or inspect.iscoroutinefunction(value):
        return False
    return not [
        p
        for p in inspect.signature(value).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _call_factory(value: Any) -> Any:
    """Call ``value`` when it is a factory; return anything else as it is."""
    if not _is_factory(value):
        return value
    try:
        return value()
    except SystemExit as exc:
        raise TargetError(f"the app factory {_name(value)} exited: {exc.code}") from None


def _is_aiohttp(app: Any) -> bool:
    return type(app).__module__.startswith("aiohttp.")


def _is_async_callable(app: Any) -> bool:
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
        getattr(app, "__call__", None)  # noqa: B004 - app objects with an async __call__
    )


def _name(app: Any) -> str:
    return getattr(app, "__qualname__", None) or type(app).__qualname__


def _crashed(exc: BaseException) -> httpx.Response:
    text = f"the app raised {type(exc).__name__}: {exc}"
    return httpx.Response(500, content=text.encode("utf-8", "replace"))


def factory_for(target: Any) -> Callable[[], Any] | None:
    """How to build a second instance of ``target`` in this process, or None."""
    if isinstance(target, str) and "://" not in target:
        return lambda: load_app(target, fresh=True)
    if _is_factory(target):
        return lambda: target()
    return None
