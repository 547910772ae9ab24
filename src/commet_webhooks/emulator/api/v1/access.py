"""``/api/v1/feature-access`` and ``/api/v1/usage/events``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...._api_models import UsageEvent
from ...errors import ApiError
from ...storage.times import from_iso
from .. import views
from ..context import Context
from ..http import ok, read_body, required_query
from ._common import Body, known_customer

__all__ = ["routes"]

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class UsageIn(Body):
    feature_code: Text
    customer_id: Text
    event_id: Text | None = None
    value: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 1


def routes(ctx: Context) -> list[BaseRoute]:
    life = ctx.lifecycle

    async def feature(request: Request) -> Response:
        code = request.path_params["code"]
        ref = required_query(request, "customerId")
        known = life.catalog_feature(code)
        if known is None:
            raise ApiError(404, "feature_not_found", f"feature {code!r} not found")
        # A customer never seen has no access (not an error: checks run before signup too).
        customer = life.billing.customer_by_any_id(ref)
        return ok(views.feature_access(life, code, customer.id if customer else ref, known))

    async def features(request: Request) -> Response:
        customer = known_customer(life, required_query(request, "customerId"))
        codes: dict[str, None] = {}
        for plan in life.plans.values():
            for f in plan.features:
                codes.setdefault(f.code)
        items = []
        for code in codes:
            known = life.catalog_feature(code)
            assert known is not None
            items.append(views.feature_access(life, code, customer.id, known))
        return ok({"object": "list", "data": items, "hasMore": False})

    async def track(request: Request) -> Response:
        body = await read_body(request, UsageIn)
        known_customer(life, body.customer_id)
        outcome = life.track(
            body.customer_id, body.feature_code, body.value, event_id=body.event_id
        )
        ctx.emitted()
        result = outcome.result
        event = UsageEvent(
            id=result["id"],
            feature_code=result["feature"],
            value=result["value"],
            customer_id=body.customer_id,
            event_id=result["event_id"],
            ts=from_iso(result["created_at"]),
            created_at=from_iso(result["created_at"]),
        )
        return ok(event, 200 if result.get("duplicate") else 201)

    return [
        Route("/api/v1/feature-access", features, methods=["GET"]),
        Route("/api/v1/feature-access/{code}", feature, methods=["GET"]),
        Route("/api/v1/usage/events", track, methods=["POST"]),
    ]
