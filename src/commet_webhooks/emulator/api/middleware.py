"""ASGI layers in front of the routes: host check, API key, request ids and versions,
deprecation notices and ``Idempotency-Key`` replay."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from email.utils import format_datetime

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..._wire import API_VERSION
from ..errors import ApiError, error_response, is_platform_path
from ..storage import Storage
from .http import MAX_BODY_BYTES, is_loopback_host
from .legacy import SUNSET

__all__ = ["ApiKeyGuard", "HostGuard", "Idempotency", "PlatformHeaders"]

_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LEGACY_SUCCESSORS = {
    "/api/webhooks": "/api/v1/webhooks",
    "/api/subscriptions/active": "/api/v1/subscriptions/active",
    "/api/features/": "/api/v1/feature-access/",
}


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


async def _refuse(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    platform = is_platform_path(scope.get("path", ""))
    await error_response(error, platform=platform)(scope, receive, send)


class HostGuard:
    """Refuses requests whose ``Host`` is not a name of this emulator (DNS rebinding).

    A page on another site can make a browser send requests to 127.0.0.1 under its
    own host name; answering only loopback names and the hosts given keeps it out.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = {h.strip("[]").lower() for h in hosts if h}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = Headers(scope=scope).get("host", "")
            name = raw.rsplit(":", 1)[0] if not raw.endswith("]") else raw
            name = name.strip("[]").lower()
            if name and not (is_loopback_host(name) or name in self.hosts or "*" in self.hosts):
                error = ApiError(421, "misdirected_request", f"unknown host {name!r}")
                await _refuse(scope, receive, send, error)
                return
        await self.app(scope, receive, send)


class ApiKeyGuard:
    """Answers 401 to any ``/api`` request without the right ``x-api-key`` (or Bearer) key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode("utf-8")

    def __repr__(self) -> str:
        return "ApiKeyGuard(api_key=<redacted>)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_api(scope.get("path", "")):
            headers = Headers(scope=scope)
            given = headers.get("x-api-key", "").encode("utf-8", "replace")
            bearer = headers.get("authorization", "")
            if not given and bearer.lower().startswith("bearer "):
                given = bearer[7:].strip().encode("utf-8", "replace")
            if not hmac.compare_digest(given, self._key):
                message = "missing x-api-key header" if not given else "invalid API key"
                await _refuse(scope, receive, send, ApiError(401, "unauthorized", message))
                return
        await self.app(scope, receive, send)


class PlatformHeaders:
    """``x-request-id`` on every API answer, ``Commet-Version`` checked and echoed, and
    ``Deprecation``/``Sunset``/``Link`` on the unversioned legacy paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not _is_api(path):
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(12)
        asked = Headers(scope=scope).get("commet-version")
        version = asked or API_VERSION
        extra = {"x-request-id": request_id, "commet-version": version}
        successor = next(
            (new for old, new in _LEGACY_SUCCESSORS.items() if path.startswith(old)), None
        )
        if successor is not None:
            extra["deprecation"] = "true"
            extra["sunset"] = format_datetime(SUNSET, usegmt=True)
            extra["link"] = f'<{successor}>; rel="successor-version"'

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        if asked is not None and (not _VERSION.match(asked) or asked > API_VERSION):
            error = ApiError(
                400,
                "invalid_api_version",
                f"Commet-Version {asked[:40]!r} is not a version this API serves "
                f"(latest: {API_VERSION})",
                param="Commet-Version",
            )
            extra["commet-version"] = API_VERSION
            await _refuse(scope, receive, send_with_headers, error)
            return
        await self.app(scope, receive, send_with_headers)


class Idempotency:
    """Replays the stored answer to a v1 write sent again with the same ``Idempotency-Key``.

    The same key with a different request is a 409 ``idempotency_key_mismatch``.
    Answers are kept for 24 hours; 5xx answers are not kept, so a retry runs again.
    """

    def __init__(self, app: ASGIApp, store: Storage) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        key = Headers(scope=scope).get("idempotency-key") if scope["type"] == "http" else None
        if not key or scope.get("method") not in _WRITES or not is_platform_path(path):
            await self.app(scope, receive, send)
            return
        if len(key) > 255:
            await _refuse(
                scope,
                receive,
                send,
                ApiError(
                    400,
                    "validation_error",
                    "Idempotency-Key is longer than 255 characters",
                    param="Idempotency-Key",
                ),
            )
            return
        body = bytearray()
        while True:  # buffered (with the same cap as the routes) to fingerprint it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _refuse(
                    scope,
                    receive,
                    send,
                    ApiError(
                        413, "payload_too_large", f"body is larger than {MAX_BODY_BYTES} bytes"
                    ),
                )
                return
            if not message.get("more_body", False):
                break
        route = f"{scope['method']} {path}"
        fingerprint = hashlib.sha256(route.encode() + b"\n" + bytes(body)).hexdigest()
        kept = self.store.idempotency.find(key, route)
        if kept is not None:
            stored_print, status, answer = kept
            if stored_print != fingerprint:
                await _refuse(
                    scope,
                    receive,
                    send,
                    ApiError(
                        409,
                        "idempotency_key_mismatch",
                        "this Idempotency-Key was used with a different request",
                        param="Idempotency-Key",
                    ),
                )
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"idempotent-replayed", b"true"),
                        (b"content-length", str(len(answer)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return

        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        status = 0
        answer_bytes = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer_bytes.extend(message.get("body", b""))
                if not message.get("more_body", False) and 0 < status < 500:
                    self.store.idempotency.keep(
                        key, route, fingerprint, status, bytes(answer_bytes)
                    )
            await send(message)

        await self.app(scope, replay_body, capture)
