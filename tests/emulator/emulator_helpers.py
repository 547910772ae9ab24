"""Helpers for the emulator tests: threaded uvicorn servers, a recording receiver, waits.

Imported as ``emulator.emulator_helpers`` (``tests`` is on ``sys.path``, see ``pyproject.toml``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support.net import free_port

__all__ = [
    "API_KEY",
    "Emulator",
    "Received",
    "Receiver",
    "ThreadedServer",
    "free_port",
    "wait_until",
]

API_KEY = "ck_test_emulator_key"
STARTUP_TIMEOUT = 30.0


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class ThreadedServer:
    """An ASGI app served by uvicorn in a background thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, STARTUP_TIMEOUT, "server start-up")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Received:
    """One request as the receiver saw it."""

    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers 500 to the first ``fail_next`` of them."""

    fail_next: int = 0
    status_on_failure: int = 500
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.requests.append(Received(time.time(), dict(request.headers), body))
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return JSONResponse({"received": False}, self.status_on_failure)
            return JSONResponse({"received": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        def enough() -> list[Received] | None:
            with self.lock:
                return list(self.requests) if len(self.requests) >= count else None

        result: list[Received] = wait_until(enough, timeout, f"{count} request(s)")
        return result


@dataclass
class Emulator:
    """A running emulator and an authenticated client for its API."""

    server: ThreadedServer
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API, assert success, return ``data``."""
        response = self.client.request(method, path, **kwargs)
        payload = response.json()
        assert response.is_success and payload["success"] is True, payload
        return payload["data"]

    def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.api(
            "POST", "/api/webhooks", json={"url": url, "events": events or []}
        )
        return result

    def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("GET", "/api/emulator/deliveries", params=params)
        return result

    def wait_delivery(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((d for d in self.deliveries() if predicate(d)), None)

        result: dict[str, Any] = wait_until(find, timeout, "a matching delivery")
        return result
