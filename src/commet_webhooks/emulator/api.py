"""The emulator's JSON API: endpoints, events, deliveries, billing simulation and state.

Every answer is wrapped as ``{"success": true, "data": ...}``; every failure as
``{"success": false, "code", "message", "details"}``. Bad input is a 4xx with a
message that names the field, never a 500. Simulation actions also return the ids
of the events they emitted, in order, as a top-level ``eventIds``.

Routes (all need ``x-api-key``)::

    GET/POST /api/webhooks                    GET/PATCH/DELETE /api/webhooks/{id}
    GET/POST /api/emulator/events             GET /api/emulator/deliveries[/{id}]
    POST /api/emulator/deliveries/{id}/retry  GET /api/emulator/plans
    POST /api/emulator/customers              POST /api/emulator/usage
    POST /api/emulator/subscriptions          GET/PATCH /api/emulator/subscriptions/{id}
    POST /api/emulator/subscriptions/{id}/pay | change-plan | renew | cancel
    GET /api/subscriptions/active?customerId= GET /api/features/{code}?customerId=

An endpoint with an empty ``events`` list (or ``"*"``) receives every event type.
Event names outside the registry are accepted (forward compatibility); creating or
updating an endpoint answers them with a ``warnings`` list in ``data``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..events import EVENT_TYPES
from ..testing import sample_data
from .billing import Action, Billing
from .delivery import DeliveryEngine
from .errors import ApiError, validation_error
from .state import DELIVERY_STATUSES, Database

__all__ = ["EmulatorApi", "error_response", "is_loopback_host", "json_response"]

MAX_BODY_BYTES = 1_048_576
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
_EVENT_NAME_HINT = "must look like 'payment.failed' (dot-separated words)"

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
T = TypeVar("T")


# ---------------------------------------------------------------------- request bodies


class _Body(msgspec.Struct, rename="camel", kw_only=True):
    """Request bodies: camelCase on the wire; unknown keys are ignored."""


class EndpointIn(_Body):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    events: list[str] = msgspec.field(default_factory=list)


class EndpointPatch(_Body):
    enabled: bool | None = None
    events: list[str] | None = None


class EventIn(_Body):
    event: NonEmpty
    data: dict[str, Any] | None = None


class CustomerIn(_Body):
    id: NonEmpty
    name: str | None = None
    email: str | None = None


class SubscriptionIn(_Body):
    customer_id: NonEmpty
    plan_id: NonEmpty


class ChangePlanIn(_Body):
    plan_id: NonEmpty


class RenewIn(_Body):
    fail: bool = False


class CancelIn(_Body):
    reason: str | None = None


class SubscriptionPatch(_Body):
    status: Literal["active", "trialing", "paused", "past_due"] | None = None
    name: NonEmpty | None = None
    cancel_at_period_end: bool | None = None
    cancel_reason: str | None = None


class UsageIn(_Body):
    customer_id: NonEmpty
    feature: NonEmpty
    value: Annotated[int, msgspec.Meta(ge=0)]


# ---------------------------------------------------------------------- helpers


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(
        {"success": False, "code": error.code, "message": error.message, "details": error.details},
        error.status,
    )


def _ok(data: Any, status: int = 200, **extra: Any) -> Response:
    return json_response({"success": True, "data": data, **extra}, status)


def _action(action: Action, status: int = 200) -> Response:
    return _ok(action.subscription, status, eventIds=action.event_ids)


def _field_of(message: str) -> tuple[str, str]:
    """Split a msgspec validation message into (field, message)."""
    text, _, path = message.partition(" - at `")
    field = path.rstrip("`").removeprefix("$").lstrip(".") or "body"
    missing = re.match(r"Object missing required field `(.+)`", text)
    if missing:
        field = f"{field}.{missing.group(1)}" if field != "body" else missing.group(1)
        text = "is required"
    return field, text


async def _read(request: Request, kind: type[T]) -> T:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=kind)
    except msgspec.ValidationError as exc:
        field, message = _field_of(str(exc))
        raise validation_error(field, message) from None
    except msgspec.DecodeError:
        raise validation_error("body", "is not valid JSON") from None


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(name, "must be an integer") from None
    if not 1 <= value <= maximum:
        raise validation_error(name, f"must be between 1 and {maximum}")
    return value


def _query_status(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise validation_error("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    return status


def _required_query(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise validation_error(name, "query parameter is required")
    return value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_events(events: list[str]) -> list[str]:
    for index, name in enumerate(events):
        if name != "*" and not _EVENT_NAME.match(name):
            raise validation_error(f"events[{index}]", f"{name!r} {_EVENT_NAME_HINT} or '*'")
    return list(dict.fromkeys(events))


def _event_warnings(events: list[str]) -> list[str]:
    """One warning per subscribed event name the registry does not know (likely a typo)."""
    warnings = []
    for name in events:
        if name == "*" or name in EVENT_TYPES:
            continue
        close = difflib.get_close_matches(name, list(EVENT_TYPES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warnings.append(f"unknown event type {name!r}{hint}")
    return warnings


# ---------------------------------------------------------------------- routes


class EmulatorApi:
    """Route handlers over the emulator's database, billing simulation and engine."""

    def __init__(
        self, db: Database, billing: Billing, engine: DeliveryEngine, *, allow_http: bool
    ) -> None:
        self.db = db
        self.billing = billing
        self.engine = engine
        self.allow_http = allow_http

    def routes(self) -> list[BaseRoute]:
        handle = self._handle
        subs = "/api/emulator/subscriptions/{id}"
        return [
            Route("/api/webhooks", handle(self.list_endpoints), methods=["GET"]),
            Route("/api/webhooks", handle(self.create_endpoint), methods=["POST"]),
            Route("/api/webhooks/{id}", handle(self.get_endpoint), methods=["GET"]),
            Route("/api/webhooks/{id}", handle(self.update_endpoint), methods=["PATCH"]),
            Route("/api/webhooks/{id}", handle(self.delete_endpoint), methods=["DELETE"]),
            Route("/api/emulator/events", handle(self.list_events), methods=["GET"]),
            Route("/api/emulator/events", handle(self.create_event), methods=["POST"]),
            Route("/api/emulator/deliveries", handle(self.list_deliveries), methods=["GET"]),
            Route("/api/emulator/deliveries/{id}", handle(self.get_delivery), methods=["GET"]),
            Route("/api/emulator/deliveries/{id}/retry", handle(self.redeliver), methods=["POST"]),
            Route("/api/emulator/plans", handle(self.list_plans), methods=["GET"]),
            Route("/api/emulator/customers", handle(self.create_customer), methods=["POST"]),
            Route("/api/emulator/usage", handle(self.record_usage), methods=["POST"]),
            Route(
                "/api/emulator/subscriptions", handle(self.create_subscription), methods=["POST"]
            ),
            Route(subs, handle(self.get_subscription), methods=["GET"]),
            Route(subs, handle(self.update_subscription), methods=["PATCH"]),
            Route(subs + "/pay", handle(self.pay), methods=["POST"]),
            Route(subs + "/change-plan", handle(self.change_plan), methods=["POST"]),
            Route(subs + "/renew", handle(self.renew), methods=["POST"]),
            Route(subs + "/cancel", handle(self.cancel), methods=["POST"]),
            Route("/api/subscriptions/active", handle(self.active_subscription), methods=["GET"]),
            Route("/api/features/{code}", handle(self.feature), methods=["GET"]),
        ]

    def _handle(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except ApiError as error:
                return error_response(error)

        return run

    # -------------------------------------------------------------- endpoints

    def _check_url(self, url: str) -> str:
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise validation_error("url", "is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise validation_error("url", "must be an absolute http(s) URL")
        if parts.scheme == "http" and not (self.allow_http or is_loopback_host(host)):
            raise validation_error(
                "url",
                "must use https (plain http is allowed only for loopback hosts, "
                "or when the emulator runs with --allow-http)",
            )
        return url.strip()

    async def list_endpoints(self, request: Request) -> Response:
        return _ok(self.db.list_endpoints())

    async def create_endpoint(self, request: Request) -> Response:
        body = await _read(request, EndpointIn)
        events = _check_events(body.events)
        endpoint = self.db.create_endpoint(self._check_url(body.url), events)
        return _ok({**endpoint, "warnings": _event_warnings(events)}, 201)

    def _endpoint_or_404(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.db.get_endpoint(endpoint_id)
        if endpoint is None:
            raise ApiError(404, "not_found", f"endpoint {endpoint_id!r} not found")
        return endpoint

    async def get_endpoint(self, request: Request) -> Response:
        return _ok(self._endpoint_or_404(request.path_params["id"]))

    async def update_endpoint(self, request: Request) -> Response:
        body = await _read(request, EndpointPatch)
        endpoint_id = request.path_params["id"]
        self._endpoint_or_404(endpoint_id)
        events = None if body.events is None else _check_events(body.events)
        self.db.update_endpoint(endpoint_id, enabled=body.enabled, events=events)
        endpoint = self._endpoint_or_404(endpoint_id)
        return _ok({**endpoint, "warnings": _event_warnings(events or [])})

    async def delete_endpoint(self, request: Request) -> Response:
        endpoint_id = request.path_params["id"]
        if not self.db.delete_endpoint(endpoint_id):
            raise ApiError(404, "not_found", f"endpoint {endpoint_id!r} not found")
        return _ok({"id": endpoint_id, "deleted": True})

    # -------------------------------------------------------------- events, deliveries

    async def list_events(self, request: Request) -> Response:
        events = self.db.list_events(
            event_type=request.query_params.get("event") or None,
            status=_query_status(request),
            limit=_query_int(request, "limit", 100, 1000),
        )
        return _ok(events)

    async def create_event(self, request: Request) -> Response:
        body = await _read(request, EventIn)
        if not _EVENT_NAME.match(body.event):
            raise validation_error("event", _EVENT_NAME_HINT)
        data = body.data if body.data is not None else sample_data(body.event)
        event_id = self.db.emit(body.event, data)
        self.engine.wake()
        return _ok({"id": event_id}, 201)

    async def list_deliveries(self, request: Request) -> Response:
        deliveries = self.db.list_deliveries(
            event_ids=[request.query_params["eventId"]]
            if request.query_params.get("eventId")
            else None,
            endpoint_id=request.query_params.get("endpointId") or None,
            status=_query_status(request),
            limit=_query_int(request, "limit", 100, 1000),
        )
        return _ok(deliveries)

    def _delivery_or_404(self, delivery_id: str) -> dict[str, Any]:
        delivery = self.db.get_delivery(delivery_id)
        if delivery is None:
            raise ApiError(404, "not_found", f"delivery {delivery_id!r} not found")
        return delivery

    async def get_delivery(self, request: Request) -> Response:
        return _ok(self._delivery_or_404(request.path_params["id"]))

    async def redeliver(self, request: Request) -> Response:
        delivery_id = request.path_params["id"]
        self.redeliver_now(delivery_id)
        return _ok(self._delivery_or_404(delivery_id), 202)

    def redeliver_now(self, delivery_id: str) -> None:
        """Queue a manual attempt (shared by the API and the dashboard)."""
        self._delivery_or_404(delivery_id)
        if not self.db.request_redelivery(delivery_id):
            raise ApiError(
                409, "invalid_state", f"delivery {delivery_id!r} belongs to a deleted endpoint"
            )
        self.engine.wake()

    # -------------------------------------------------------------- billing simulation

    async def list_plans(self, request: Request) -> Response:
        return _ok([msgspec.to_builtins(plan) for plan in self.billing.plans.values()])

    async def create_customer(self, request: Request) -> Response:
        body = await _read(request, CustomerIn)
        return _ok(self.billing.create_customer(body.id, body.name, body.email), 201)

    async def record_usage(self, request: Request) -> Response:
        body = await _read(request, UsageIn)
        return _ok(self.billing.record_usage(body.customer_id, body.feature, body.value))

    def _emitted(self, action: Action, status: int = 200) -> Response:
        self.engine.wake()
        return _action(action, status)

    async def create_subscription(self, request: Request) -> Response:
        body = await _read(request, SubscriptionIn)
        return self._emitted(self.billing.create_subscription(body.customer_id, body.plan_id), 201)

    async def get_subscription(self, request: Request) -> Response:
        return _ok(self.billing.get_subscription(request.path_params["id"]))

    async def pay(self, request: Request) -> Response:
        return self._emitted(self.billing.pay(request.path_params["id"]))

    async def change_plan(self, request: Request) -> Response:
        body = await _read(request, ChangePlanIn)
        return self._emitted(self.billing.change_plan(request.path_params["id"], body.plan_id))

    async def renew(self, request: Request) -> Response:
        body = await _read(request, RenewIn)
        return self._emitted(self.billing.renew(request.path_params["id"], fail=body.fail))

    async def cancel(self, request: Request) -> Response:
        body = await _read(request, CancelIn)
        return self._emitted(self.billing.cancel(request.path_params["id"], body.reason))

    async def update_subscription(self, request: Request) -> Response:
        body = await _read(request, SubscriptionPatch)
        if all(value is None for value in msgspec.structs.astuple(body)):
            raise validation_error(
                "body", "give at least one of status, name, cancelAtPeriodEnd, cancelReason"
            )
        action = self.billing.update(
            request.path_params["id"],
            status=body.status,
            name=body.name,
            cancel_at_period_end=body.cancel_at_period_end,
            cancel_reason=body.cancel_reason,
        )
        return self._emitted(action)

    # -------------------------------------------------------------- state API (SPEC §1)

    async def active_subscription(self, request: Request) -> Response:
        return _ok(self.billing.active_subscription(_required_query(request, "customerId")))

    async def feature(self, request: Request) -> Response:
        customer_id = _required_query(request, "customerId")
        return _ok(self.billing.feature_access(request.path_params["code"], customer_id))
