"""``/api/v1/customers``: create, get, update, list."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import views
from ..context import Context
from ..http import ok, read_body
from ._common import Body, known_customer, page

__all__ = ["routes"]

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]


class CustomerIn(Body):
    email: Email
    id: Text | None = None
    external_id: Text | None = None
    full_name: Text | None = None
    timezone: Text | None = None
    metadata: dict[str, Any] | None = None


class CustomerPatch(Body):
    email: Email | None = None
    external_id: Text | None = None
    full_name: Text | None = None
    timezone: Text | None = None
    metadata: dict[str, Any] | None = None


def routes(ctx: Context) -> list[BaseRoute]:
    life = ctx.lifecycle

    async def create(request: Request) -> Response:
        body = await read_body(request, CustomerIn)
        if body.id is not None:  # idempotent by id, as on the platform
            existing = life.billing.customers.get(body.id)
            if existing is not None:
                return ok(views.customer(existing))
        customer = life.create_customer(
            customer_id=body.id,
            external_id=body.external_id,
            name=body.full_name,
            email=body.email,
            timezone_name=body.timezone,
            metadata=body.metadata,
        )
        ctx.emitted()
        return ok(views.customer(customer), 201)

    async def get(request: Request) -> Response:
        return ok(views.customer(known_customer(life, request.path_params["id"], "id")))

    async def update(request: Request) -> Response:
        body = await read_body(request, CustomerPatch)
        changes: dict[str, Any] = {}
        for name, column in (
            ("email", "email"),
            ("external_id", "external_id"),
            ("full_name", "name"),
            ("timezone", "timezone"),
            ("metadata", "metadata"),
        ):
            value = getattr(body, name)
            if value is not None:
                changes[column] = value
        known_customer(life, request.path_params["id"], "id")
        customer = life.update_customer(request.path_params["id"], **changes)
        ctx.emitted()
        return ok(views.customer(customer))

    async def list_(request: Request) -> Response:
        return page(
            request,
            lambda after, limit: life.billing.list_customers(after_seq=after, limit=limit),
            lambda customer: customer.seq,
            views.customer,
        )

    return [
        Route("/api/v1/customers", list_, methods=["GET"]),
        Route("/api/v1/customers", create, methods=["POST"]),
        Route("/api/v1/customers/{id}", get, methods=["GET"]),
        Route("/api/v1/customers/{id}", update, methods=["PATCH"]),
    ]
