"""Assembling the emulator: storage, lifecycle, delivery engine, routes, guards; and ``run``."""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
except ImportError as exc:  # an optional extra is not installed
    from .._optional import missing_extra

    raise missing_extra("commet_webhooks.emulator", "cli", exc) from exc

from . import api
from .api.http import is_loopback_host
from .api.middleware import ApiKeyGuard, HostGuard, Idempotency, PlatformHeaders
from .chaos import Chaos, parse_chaos
from .dashboard import Dashboard
from .delivery import DeliveryEngine
from .errors import ApiError, exception_handlers
from .lifecycle import Lifecycle
from .metrics import metrics_route
from .plans import load_plans
from .policy import DeliveryPolicy
from .storage import Endpoint, Storage

__all__ = ["create_app", "run"]

logger = logging.getLogger("commet_webhooks.emulator")

_DEFAULT: Literal["default"] = "default"


def create_app(
    *,
    db_path: str,
    api_key: str,
    time_scale: float = 1.0,
    allow_http: bool = False,
    plans_file: str | None = None,
    retry_schedule: Sequence[float] | None = None,
    auto_disable_after: int | Literal["default"] | None = _DEFAULT,
    timeout: float | None = None,
    allowed_hosts: Sequence[str] = (),
    allow_private: bool = True,
    chaos: Chaos | str | None = None,
) -> Starlette:
    """The emulator as an ASGI app; its delivery engine runs for the app's lifespan.

    ``db_path`` is the SQLite file holding state and outbox (created if missing).
    Delivery follows the platform's policy unless overridden: ``retry_schedule``
    (seconds between attempts; default 1 min, 5 min, 15 min, 30 min, 1 h, 1 h, 1 h),
    ``timeout`` (default 10 s) and ``auto_disable_after`` (default 3 events in a row
    that failed; None never disables). ``time_scale`` divides every delay.
    Requests must name this host: loopback names, or one of ``allowed_hosts``
    (``"*"`` allows any). ``allow_private=False`` refuses endpoint URLs on private
    and link-local addresses. ``chaos`` (a :class:`.Chaos` or ``"duplicates=0.1,..."``)
    applies to every endpoint without chaos of its own. ``GET /metrics`` shows the
    delivery engine's own metrics to Prometheus (with the ``prometheus`` extra), with
    no API key, like the dashboard. Raises ``ValueError`` for unusable settings
    (``PlanCatalogError`` for a bad plan file).
    """
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key must be a non-empty string")
    policy = DeliveryPolicy.build(
        retry_schedule=retry_schedule,
        timeout=timeout,
        auto_disable_after=auto_disable_after,
        time_scale=time_scale,
    )
    plans = load_plans(plans_file)
    default_chaos = parse_chaos(chaos) if isinstance(chaos, str) else chaos
    store = Storage(db_path)
    engine = DeliveryEngine(store, policy, chaos=default_chaos)
    lifecycle = Lifecycle(store, plans)
    ctx = api.Context(store, lifecycle, engine, allow_http=allow_http, allow_private=allow_private)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            store.close()

    app = Starlette(
        routes=[*api.routes(ctx), *Dashboard(ctx).routes(), metrics_route(engine.metrics)],
        exception_handlers=exception_handlers(),
        middleware=[
            Middleware(HostGuard, hosts=list(allowed_hosts)),
            Middleware(ApiKeyGuard, api_key=api_key),
            Middleware(PlatformHeaders),
            Middleware(Idempotency, store=store),
        ],
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.db = store.db
    app.state.engine = engine
    app.state.metrics = engine.metrics
    app.state.lifecycle = lifecycle
    app.state.context = ctx
    return app


def _forwarding_endpoint(app: Starlette, url: str) -> Endpoint:
    """The endpoint ``--forward-to`` uses: the live one at ``url``, or a new one for ``*``."""
    ctx: api.Context = app.state.context
    try:
        checked = ctx.check_url(url)
    except ApiError as error:
        raise ValueError(f"--forward-to {error.message}") from None
    for endpoint in ctx.store.endpoints.page():
        if endpoint.url == checked and "*" in endpoint.events:
            if not endpoint.enabled:
                ctx.store.endpoints.update(endpoint.id, enabled=True)
            return endpoint
    return ctx.store.endpoints.create(checked, ["*"], description="--forward-to")


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
    auto_disable_after: int | Literal["default"] | None = _DEFAULT,
    timeout: float | None = None,
    allow_private: bool | None = None,
    forward_to: str | None = None,
    chaos: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve the emulator with uvicorn until interrupted (blocking).

    Without ``api_key`` a fresh ``ck_…`` key is generated and printed. The delivery
    options are as in :func:`create_app`. Private and link-local endpoint targets are
    refused by default when ``host`` is not a loopback address. With ``sock`` (an
    already listening socket) the emulator serves on it, and ``host`` and ``port``
    are only shown; the caller keeps ownership of the socket. ``forward_to`` (a URL)
    registers an endpoint for every event there, or reuses the one already there,
    and prints its signing secret.
    """
    import uvicorn

    generated = api_key is None
    key = api_key if api_key is not None else "ck_" + secrets.token_urlsafe(24)
    loopback = is_loopback_host(host)
    app = create_app(
        db_path=db_path,
        api_key=key,
        time_scale=time_scale,
        allow_http=allow_http,
        plans_file=plans_file,
        retry_schedule=retry_schedule,
        auto_disable_after=auto_disable_after,
        timeout=timeout,
        allowed_hosts=()
        if loopback
        else (host, socket.gethostname(), "*" if host in ("0.0.0.0", "::") else ""),  # noqa: S104
        allow_private=loopback if allow_private is None else allow_private,
        chaos=chaos,
    )
    if sock is not None:
        port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"Commet emulator on http://{shown_host}:{port}  (dashboard: http://{shown_host}:{port}/)",
        flush=True,
    )
    policy = app.state.engine.policy
    print(
        f"Database: {db_path}   time scale: {time_scale:g}   delivery: {policy.max_attempts} "
        f"attempts, {policy.timeout:g} s timeout, "
        + (
            f"auto-disable after {policy.auto_disable_after} failed events"
            if policy.auto_disable_after
            else "no auto-disable"
        ),
        flush=True,
    )
    if generated:
        print(f"API key: {key}", flush=True)
    if app.state.engine.chaos.active:
        print(f"Chaos on every endpoint: {chaos}", flush=True)
    if forward_to is not None:
        endpoint = _forwarding_endpoint(app, forward_to)
        print(f"Forwarding every event to {endpoint.url}", flush=True)
        print(f"Signing secret: {endpoint.secret}", flush=True)
    if not loopback:
        logger.warning(
            "listening on %s: the dashboard has no login and is meant for loopback only", host
        )
    if sock is None:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
        return
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
