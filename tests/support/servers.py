"""Run an app under a real server on 127.0.0.1, in a thread of this process.

Each runner is a context manager that yields the URL of ``path`` once the server
accepts connections, and stops the server when the block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .net import free_port

__all__ = ["STARTUP_TIMEOUT", "serve_aiohttp", "serve_asgi", "serve_wsgi"]

STARTUP_TIMEOUT = 30.0


@contextlib.contextmanager
def serve_asgi(app: Any, path: str = "", *, lifespan: str = "off") -> Iterator[str]:
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
        _wait_started(lambda: server.started, thread, "uvicorn")
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)


@contextlib.contextmanager
def serve_wsgi(app: Any, path: str = "") -> Iterator[str]:
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
def serve_aiohttp(
    make_app: Callable[[], Any], path: str = "", **runner_options: Any
) -> Iterator[str]:
    """Run an ``aiohttp.web`` app with its ``AppRunner`` on a private loop in a thread
    (``runner_options``: e.g. ``handler_cancellation=True``)."""
    from aiohttp import web

    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        runner = web.AppRunner(make_app(), **runner_options)
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
        _wait_started(ready.is_set, thread, "aiohttp")
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(STARTUP_TIMEOUT)


def _wait_started(condition: Callable[[], bool], thread: threading.Thread, what: str) -> None:
    event = threading.Event()
    for _ in range(int(STARTUP_TIMEOUT / 0.05)):
        if condition():
            return
        if not thread.is_alive():
            raise RuntimeError(f"{what} exited before it started")
        event.wait(0.05)
    raise TimeoutError(f"{what} did not start within {STARTUP_TIMEOUT} s")
