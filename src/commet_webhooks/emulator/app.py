"""Assembling the emulator: the ASGI app, its API-key guard and lifespan, and ``run``."""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.emulator", "cli", exc) from exc

from .api import EmulatorApi, error_response, is_loopback_host
from .billing import Billing
from .dashboard import Dashboard
from .delivery import DeliveryEngine
from .errors import ApiError
from .plans import load_plans
from .state import Database

__all__ = ["create_app", "run"]

logger = logging.getLogger("commet_webhooks.emulator")


class ApiKeyGuard:
    """Answers 401 to any ``/api`` request without the right ``x-api-key`` header."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode("utf-8")

    def __repr__(self) -> str:
        return "ApiKeyGuard(api_key=<redacted>)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            given = next((v for k, v in scope["headers"] if k == b"x-api-key"), b"")
            if not hmac.compare_digest(given, self._key):
                message = "missing x-api-key header" if not given else "invalid API key"
                response = error_response(ApiError(401, "unauthorized", message))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api"):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail)))
    return PlainTextResponse(str(exc.detail), exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal_error", "unexpected emulator error"))


def create_app(
    *,
    db_path: str,
    api_key: str,
    time_scale: float = 1.0,
    allow_http: bool = False,
    plans_file: str | None = None,
    retry_schedule: Sequence[float] | None = None,
    auto_disable_after: int | None = None,
) -> Starlette:
    """The emulator as an ASGI app; its delivery engine runs for the app's lifespan.

    ``db_path`` is the SQLite file holding state and outbox (created if missing).
    Retry delays (``retry_schedule``, seconds; default 1 min ... 6 h) are divided by
    ``time_scale``. ``auto_disable_after=N`` disables an endpoint after N events in
    a row whose delivery failed. Raises ``ValueError`` for unusable settings
    (``PlanCatalogError`` for a bad plan file).
    """
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key must be a non-empty string")
    plans = load_plans(plans_file)
    db = Database(db_path)
    engine = DeliveryEngine(
        db,
        time_scale=time_scale,
        retry_schedule=retry_schedule,
        auto_disable_after=auto_disable_after,
    )
    api = EmulatorApi(db, Billing(db, plans), engine, allow_http=allow_http)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            db.close()

    app = Starlette(
        routes=[*api.routes(), *Dashboard(api).routes()],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.add_middleware(ApiKeyGuard, api_key=api_key)
    app.state.db = db
    app.state.engine = engine
    return app


def run(
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    db_path: str = "commet-emulator.db",
    api_key: str | None = None,
    time_scale: float = 1.0,
    allow_http: bool = False,
    plans_file: str | None = None,
    retry_schedule: Sequence[float] | None = None,
    auto_disable_after: int | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve the emulator with uvicorn until interrupted (blocking).

    Without ``api_key`` a fresh ``ck_…`` key is generated and printed.
    ``retry_schedule`` and ``auto_disable_after`` are as in :func:`create_app`. With
    ``sock`` (an already listening socket) the emulator serves on it, and ``host``
    and ``port`` are only shown; the caller keeps ownership of the socket.
    """
    import uvicorn

    generated = api_key is None
    key = api_key if api_key is not None else "ck_" + secrets.token_urlsafe(24)
    app = create_app(
        db_path=db_path,
        api_key=key,
        time_scale=time_scale,
        allow_http=allow_http,
        plans_file=plans_file,
        retry_schedule=retry_schedule,
        auto_disable_after=auto_disable_after,
    )
    if sock is not None:
        port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"Commet emulator on http://{shown_host}:{port}  (dashboard: http://{shown_host}:{port}/)",
        flush=True,
    )
    print(f"Database: {db_path}   time scale: {time_scale:g}", flush=True)
    if generated:
        print(f"API key: {key}", flush=True)
    if not is_loopback_host(host):
        logger.warning(
            "listening on %s: the dashboard has no login and is meant for loopback only", host
        )
    if sock is None:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        return
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
