"""The seed-era routes (``/api/webhooks``, ``/api/subscriptions/active``,
``/api/features/{code}``), kept working in their old shape.

The platform answers its unversioned paths with ``Deprecation``, ``Sunset`` and a
``Link`` to the successor; :class:`.middleware.PlatformHeaders` adds them here too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import ApiError
from ..lifecycle import ACCESS_STATUSES, BILLABLE, Lifecycle
from ..plans import Feature
from ..storage import Endpoint
from ..storage.billing import Subscription
from ..storage.times import from_iso
from .context import Context
from .http import ok, read_body, required_query

__all__ = ["endpoint_view", "routes", "subscription_view"]


class _Body(msgspec.Struct, rename="camel", kw_only=True):
    """Request bodies: camelCase on the wire; unknown keys are ignored."""


class EndpointIn(_Body):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    events: list[str] = msgspec.field(default_factory=list)


class EndpointPatch(_Body):
    enabled: bool | None = None
    events: list[str] | None = None


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """The seed-era endpoint shape (with its secret on every read)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "secret": endpoint.secret,
        "enabled": endpoint.enabled,
    }


def subscription_view(life: Lifecycle, row: Subscription) -> dict[str, Any]:
    """A subscription in the seed-era shape of ``GET /api/subscriptions/active``."""
    plan = life.plan(row.plan_id)
    now = life.clock.now()
    current_period = None
    if row.current_period_start is not None and row.current_period_end is not None:
        left = from_iso(row.current_period_end) - now
        current_period = {
            "start": row.current_period_start,
            "end": row.current_period_end,
            "daysRemaining": max(left.days + (1 if left.seconds else 0), 0),
        }
    start_date = from_iso(row.start_date) if row.start_date else None
    return {
        "id": row.id,
        "customerId": life.customer_ref(row.customer_id),
        "plan": {
            "id": plan.id,
            "name": plan.name,
            "basePrice": plan.base_price,
            "billingInterval": plan.billing_interval,
        },
        "name": row.name,
        "description": plan.description,
        "status": row.status,
        "trialEndsAt": row.trial_ends_at,
        "currentPeriod": current_period,
        "features": [_feature_summary(life, row, f) for f in plan.features],
        "startDate": row.start_date,
        "endDate": row.end_date,
        "billingDayOfMonth": start_date.day if start_date else None,
        "nextBillingDate": row.current_period_end if row.status in BILLABLE else None,
        "checkoutUrl": None,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }


def _feature_summary(life: Lifecycle, row: Subscription, feature: Feature) -> dict[str, Any]:
    summary: dict[str, Any] = {"code": feature.code, "name": feature.name, "type": feature.type}
    if feature.type == "boolean":
        summary["enabled"] = feature.enabled
    else:
        current = (
            row.seats
            if feature.type == "seats"
            else life.billing.usage(row.customer_id, feature.code)
        )
        summary["usage"] = {
            "current": current,
            "included": feature.included,
            "unlimited": feature.unlimited,
        }
    return summary


def feature_view(life: Lifecycle, code: str, customer_id: str) -> dict[str, Any]:
    """``GET /api/features/{code}`` in the seed-era shape."""
    known = life.catalog_feature(code)
    if known is None:
        raise ApiError(404, "not_found", f"feature {code!r} not found")
    row = life.billing.current_subscription(customer_id)
    granted = row is not None and row.status in ACCESS_STATUSES
    feature = None
    if row is not None:
        feature = next((f for f in life.plan(row.plan_id).features if f.code == code), None)
    if feature is None:
        return {
            "code": code,
            "name": known.name,
            "type": known.type,
            "allowed": False,
            "enabled": False,
        }
    result: dict[str, Any] = {"code": code, "name": feature.name, "type": feature.type}
    if feature.type == "boolean":
        result.update(allowed=granted and feature.enabled, enabled=feature.enabled)
        return result
    current = life.billing.usage(customer_id, code)
    included = feature.included or 0
    result.update(
        allowed=granted and (feature.unlimited or current < included or feature.overage_enabled),
        current=current,
        included=feature.included,
        remaining=None if feature.unlimited else max(included - current, 0),
        overage=max(current - included, 0) if not feature.unlimited else 0,
        overageUnitPrice=feature.overage_unit_price,
        unlimited=feature.unlimited,
        overageEnabled=feature.overage_enabled,
    )
    return result


def routes(ctx: Context) -> list[BaseRoute]:
    store, life = ctx.store, ctx.lifecycle

    async def list_endpoints(request: Request) -> Response:
        return ok([endpoint_view(e) for e in store.endpoints.page()])

    async def create_endpoint(request: Request) -> Response:
        body = await read_body(request, EndpointIn)
        events = ctx.check_events(body.events)
        endpoint = store.endpoints.create(ctx.check_url(body.url), events)
        return ok({**endpoint_view(endpoint), "warnings": ctx.event_warnings(events)}, 201)

    async def get_endpoint(request: Request) -> Response:
        return ok(endpoint_view(ctx.endpoint(request.path_params["id"])))

    async def update_endpoint(request: Request) -> Response:
        body = await read_body(request, EndpointPatch)
        endpoint_id = request.path_params["id"]
        ctx.endpoint(endpoint_id)
        events = None if body.events is None else ctx.check_events(body.events)
        store.endpoints.update(endpoint_id, enabled=body.enabled, events=events)
        endpoint = ctx.endpoint(endpoint_id)
        return ok({**endpoint_view(endpoint), "warnings": ctx.event_warnings(events or [])})

    async def delete_endpoint(request: Request) -> Response:
        endpoint_id = request.path_params["id"]
        if not store.endpoints.delete(endpoint_id):
            raise ApiError(404, "not_found", f"endpoint {endpoint_id!r} not found")
        return ok({"id": endpoint_id, "deleted": True})

    async def active(request: Request) -> Response:
        ref = required_query(request, "customerId")
        customer = life.billing.customer_by_any_id(ref)
        row = None if customer is None else life.billing.current_subscription(customer.id)
        return ok(None if row is None else subscription_view(life, row))

    async def feature(request: Request) -> Response:
        ref = required_query(request, "customerId")
        customer = life.billing.customer_by_any_id(ref)
        return ok(feature_view(life, request.path_params["code"], customer.id if customer else ref))

    return [
        Route("/api/webhooks", list_endpoints, methods=["GET"]),
        Route("/api/webhooks", create_endpoint, methods=["POST"]),
        Route("/api/webhooks/{id}", get_endpoint, methods=["GET"]),
        Route("/api/webhooks/{id}", update_endpoint, methods=["PATCH"]),
        Route("/api/webhooks/{id}", delete_endpoint, methods=["DELETE"]),
        Route("/api/subscriptions/active", active, methods=["GET"]),
        Route("/api/features/{code}", feature, methods=["GET"]),
    ]


#: When the unversioned paths stop answering (sent as ``Sunset``).
SUNSET = datetime(2027, 6, 30, tzinfo=timezone.utc)
