"""A real HTTP server on 127.0.0.1 speaking the platform's ``/api/v1`` wire, scriptable per test.

By default it behaves like Commet (API version 2026-08-27): checks ``x-api-key``,
answers ``GET /api/v1/subscriptions/active``, ``GET /api/v1/feature-access/{code}``,
``GET /api/v1/feature-access`` and ``POST /api/v1/usage/events`` from the
``subscriptions`` / ``features`` dicts with bare objects (no wrapper), errors as
``{"error": {type, code, message, param, details, doc_url}}``, an ``x-request-id`` on
every answer, and replays the first answer to a repeated ``Idempotency-Key``.
Tests queue :class:`Reply` objects to override the next answers (status codes,
``Retry-After``, delays, bytes dripped slowly, dropped connections, odd bodies).
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

from .platform import error_body, usage_event

API_KEY = "ck_test_SECRETKEY_0xC0FFEE"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    """One scripted answer. ``json`` is sent as the body unless ``body`` is given.

    ``drip`` sends the body one byte per ``drip`` seconds; ``drip_headers`` does the
    same to the status line and headers. ``length`` overrides ``Content-Length``
    (None: the real length; -1: no Content-Length, the connection closes at the end).
    """

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    drip: float = 0.0
    drip_headers: bool = False
    length: int | None = None


@dataclass
class Seen:
    """A request as the server received it."""

    method: str
    raw_path: str  # still percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_port: int
    at: float  # time.monotonic() on arrival

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    def json(self) -> Any:
        return json.loads(self.body)


class StateServer:
    """The scriptable state of the fake Commet API."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.url = ""
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.features: dict[tuple[str, str], dict[str, Any]] = {}
        self.idempotent: dict[str, Reply] = {}
        self.default_delay = 0.0
        self.script: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.finished: list[bool] = []  # per answer: was the whole answer written?
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._events = 0

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

    def done(self, finished: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            self.finished.append(finished)

    def default(self, seen: Seen) -> Reply:
        """What Commet would answer."""
        if seen.headers.get("x-api-key") != self.api_key:
            return _error(401, "unauthorized", "Invalid or missing API key", "authentication_error")
        if seen.method == "POST" and seen.raw_path == "/api/v1/usage/events":
            return self._track(seen)
        customer = seen.query.get("customerId", [""])[0]
        if not customer:
            return _error(
                400,
                "validation_error",
                "customerId is required",
                param="customerId",
                details=[{"field": "customerId", "message": "Required"}],
            )
        parts = seen.raw_path.split("/")
        if seen.raw_path == "/api/v1/subscriptions/active":
            return Reply(200, self.subscriptions.get(customer), delay=self.default_delay)
        if seen.raw_path == "/api/v1/feature-access":
            data = [f for (c, _), f in self.features.items() if c == customer]
            page = {"object": "list", "data": data, "hasMore": False}
            return Reply(200, page, delay=self.default_delay)
        if len(parts) == 5 and parts[:4] == ["", "api", "v1", "feature-access"]:
            feature = self.features.get((customer, unquote(parts[4])))
            if feature is None:
                return _error(404, "feature_not_found", "Feature not found", "not_found_error")
            return Reply(200, feature, delay=self.default_delay)
        return _error(404, "not_found", "Route not found", "not_found_error")

    def _track(self, seen: Seen) -> Reply:
        key = seen.headers.get("idempotency-key")
        with self._lock:
            if key is not None and key in self.idempotent:
                return self.idempotent[key]
        try:
            body = seen.json()
        except ValueError:
            return _error(400, "invalid_json", "The request body is not valid JSON")
        missing = [f for f in ("featureCode", "customerId") if not body.get(f)]
        if missing:
            return _error(
                400,
                "validation_error",
                f"{missing[0]} is required",
                param=missing[0],
                details=[{"field": f, "message": "Required"} for f in missing],
            )
        with self._lock:
            self._events += 1
            n = self._events
        event = usage_event(
            f"ue_{n}",
            feature_code=body["featureCode"],
            customer_id=body["customerId"],
            value=body.get("value", 1),
            event_id=body.get("eventId"),
        )
        event["properties"] = body.get("properties", [])
        reply = Reply(201, event)
        if key is not None:
            with self._lock:
                self.idempotent[key] = reply
        return reply


def _error(
    status: int,
    code: str,
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    details: Any = None,
) -> Reply:
    return Reply(status, error_body(code, message, type_=type_, param=param, details=details))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    timeout = 10  # idle keep-alive connections end on their own

    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(
            method=self.command,
            raw_path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            client_port=self.client_address[1],
            at=time.monotonic(),
        )
        with state._lock:
            request_no = len(state.seen) + 1
        reply = state.record(seen)
        finished = False
        try:
            if reply.delay:
                state.stopping.wait(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            body = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
            head.append("Content-Type: application/json")
            if reply.length != -1:
                head.append(
                    f"Content-Length: {len(body) if reply.length is None else reply.length}"
                )
            else:
                head.append("Connection: close")
                self.close_connection = True
            if not any(name.lower() == "x-request-id" for name in reply.headers):
                head.append(f"x-request-id: req_{request_no}")
            head += [f"{name}: {value}" for name, value in reply.headers.items()]
            raw_head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
            if reply.drip:
                self._write(raw_head, reply.drip if reply.drip_headers else 0.0)
                self._write(body, reply.drip)
            else:  # one write: a split answer would wait on delayed ACKs
                self._write(raw_head + body, 0.0)
            finished = not state.stopping.is_set()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            state.done(finished)

    def _write(self, data: bytes, drip: float) -> None:
        if not drip:
            self.wfile.write(data)
            self.wfile.flush()
            return
        for i in range(len(data)):
            if self.server.state.stopping.wait(drip):
                raise BrokenPipeError("server stopping")
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

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
