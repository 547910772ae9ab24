"""A real HTTP server on 127.0.0.1 speaking the state API wire, scriptable per test.

By default it behaves like Commet: checks ``x-api-key``, answers
``GET /api/subscriptions/active`` and ``GET /api/features/{code}`` from the
``subscriptions`` / ``features`` dicts, in the ``{"success", "data", ...}`` wrapper.
Tests queue :class:`Reply` objects to override the next answers (status codes,
``Retry-After``, delays, dropped connections, odd bodies).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

API_KEY = "ck_test_SECRETKEY_0xC0FFEE"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    """One scripted answer. ``json`` is sent as the body unless ``body`` is given."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    """A request as the server received it."""

    method: str
    raw_path: str  # still percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    client_port: int
    at: float  # time.monotonic() on arrival

    @property
    def path(self) -> str:
        return unquote(self.raw_path)


def subscription(customer_id: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    """A realistic active-subscription payload, with an unknown field for tolerance."""
    return {
        "id": f"sub_{customer_id}",
        "customerId": customer_id,
        "plan": {"id": "plan_pro", "name": "Pro", "basePrice": 4900, "billingInterval": "monthly"},
        "name": "Pro monthly",
        "description": None,
        "status": status,
        "trialEndsAt": None,
        "currentPeriod": {
            "start": "2026-11-01T00:00:00.000Z",
            "end": "2026-12-01T00:00:00.000Z",
            "daysRemaining": 4,
        },
        "features": [
            {
                "code": "advanced_analytics",
                "name": "Advanced analytics",
                "type": "boolean",
                "enabled": True,
            },
            {
                "code": "api_calls",
                "name": "API calls",
                "type": "metered",
                "usage": {"current": 120, "included": 1000},
            },
        ],
        "startDate": "2026-01-01T00:00:00Z",
        "endDate": None,
        "billingDayOfMonth": 1,
        "nextBillingDate": "2026-12-01T00:00:00Z",
        "checkoutUrl": None,
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-11-01T00:00:00",
        "futureField": {"anything": [1, 2, 3]},
        **extra,
    }


class StateServer:
    """The scriptable state of the fake Commet API."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.url = ""
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.features: dict[tuple[str, str], dict[str, Any]] = {}
        self.default_delay = 0.0
        self.script: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then behave normally."""
        with self._lock:
            self.script.extend(replies)

    def record(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.script:
                return self.script.popleft()
        return self.default(seen)

    def done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def default(self, seen: Seen) -> Reply:
        """What Commet would answer."""
        if seen.headers.get("x-api-key") != self.api_key:
            return _error(401, "unauthorized", "Invalid or missing API key")
        customer = seen.query.get("customerId", [""])[0]
        parts = seen.raw_path.split("/")
        if not customer:
            return _error(
                400,
                "validation_error",
                "Invalid request",
                [{"field": "customerId", "message": "Required"}],
            )
        if seen.raw_path == "/api/subscriptions/active":
            sub = self.subscriptions.get(customer)
            return Reply(200, {"success": True, "data": sub}, delay=self.default_delay)
        if len(parts) == 4 and parts[:3] == ["", "api", "features"]:
            feature = self.features.get((customer, unquote(parts[3])))
            if feature is None:
                return _error(404, "not_found", "Feature not found")
            return Reply(200, {"success": True, "data": feature}, delay=self.default_delay)
        return _error(404, "not_found", "Route not found")


def _error(status: int, code: str, message: str, details: Any = None) -> Reply:
    return Reply(status, {"success": False, "code": code, "message": message, "details": details})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    timeout = 10  # idle keep-alive connections end on their own

    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        seen = Seen(
            method="GET",
            raw_path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            client_port=self.client_address[1],
            at=time.monotonic(),
        )
        reply = state.record(seen)
        try:
            if reply.delay:
                state.stopping.wait(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            state.done()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: StateServer


@pytest.fixture
def server() -> Iterator[StateServer]:
    """A running fake Commet API on a free 127.0.0.1 port; always shut down."""
    state = StateServer()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = state
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
