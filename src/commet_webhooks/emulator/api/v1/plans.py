"""``/api/v1/plans``: the catalog, read-only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...errors import ApiError
from .. import views
from ..context import Context
from ..http import ok

__all__ = ["routes"]


def routes(ctx: Context) -> list[BaseRoute]:
    plans = ctx.lifecycle.plans

    async def list_(request: Request) -> Response:
        return ok(
            {"object": "list", "data": [views.plan(p) for p in plans.values()], "hasMore": False}
        )

    async def get(request: Request) -> Response:
        plan = plans.get(request.path_params["id"])
        if plan is None:
            raise ApiError(404, "plan_not_found", f"plan {request.path_params['id']!r} not found")
        return ok(views.plan(plan))

    return [
        Route("/api/v1/plans", list_, methods=["GET"]),
        Route("/api/v1/plans/{id}", get, methods=["GET"]),
    ]
