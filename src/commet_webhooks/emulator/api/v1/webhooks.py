"""``/api/v1/webhooks``: endpoint CRUD (the secret only in the create answer) and ``/test``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...._api_models import DeletedObject, WebhookTest
from ....events import EVENT_TYPES
from ...errors import ApiError, validation_error
from ...storage.times import from_iso
from .. import views
from ..context import Context
from ..http import ok, read_body
from ._common import Body, page

__all__ = ["routes"]

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Version = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class WebhookIn(Body):
    url: Url
    events: list[str]
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    api_version: Version | None = None


class WebhookPatch(Body):
    url: Url | None = None
    events: list[str] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    is_active: bool | None = None
    api_version: Version | None = None


def routes(ctx: Context) -> list[BaseRoute]:
    async def list_(request: Request) -> Response:
        return page(
            request,
            lambda after, limit: ctx.store.endpoints.page(after_seq=after, limit=limit),
            lambda endpoint: endpoint.seq,
            views.webhook,
        )

    async def create(request: Request) -> Response:
        body = await read_body(request, WebhookIn)
        if not body.events:
            raise validation_error("events", "give at least one event type (or '*')")
        events = ctx.check_events(body.events)
        endpoint = ctx.store.endpoints.create(
            ctx.check_url(body.url),
            events,
            description=body.description,
            api_version=body.api_version,
        )
        return ok(views.created_webhook(endpoint), 201)

    async def get(request: Request) -> Response:
        return ok(views.webhook(ctx.endpoint(request.path_params["id"])))

    async def update(request: Request) -> Response:
        body = await read_body(request, WebhookPatch)
        endpoint_id = request.path_params["id"]
        ctx.endpoint(endpoint_id)
        events = None if body.events is None else ctx.check_events(body.events)
        if events == []:
            raise validation_error("events", "give at least one event type (or '*')")
        endpoint = ctx.store.endpoints.update(
            endpoint_id,
            url=None if body.url is None else ctx.check_url(body.url),
            enabled=body.is_active,
            events=events,
            description=body.description,
            api_version=body.api_version,
        )
        assert endpoint is not None
        return ok(views.webhook(endpoint))

    async def delete(request: Request) -> Response:
        endpoint_id = request.path_params["id"]
        if not ctx.store.endpoints.delete(endpoint_id):
            raise ApiError(404, "not_found", f"webhook endpoint {endpoint_id!r} not found")
        return ok(DeletedObject(id=endpoint_id, object="webhook"))

    async def test(request: Request) -> Response:
        """Send one sample event to this endpoint now and say how it went."""
        endpoint = ctx.endpoint(request.path_params["id"])
        wanted = [name for name in endpoint.events if name in EVENT_TYPES]
        event_type = wanted[0] if wanted else "subscription.created"
        delivery_id = ctx.lifecycle.send_test(event_type, endpoint)
        outcome = await ctx.engine.deliver_now(delivery_id)
        return ok(
            WebhookTest(
                success=outcome is not None and outcome.ok,
                delivery_id=delivery_id,
                delivered_at=from_iso(outcome.attempted_at) if outcome is not None else None,
            )
        )

    return [
        Route("/api/v1/webhooks", list_, methods=["GET"]),
        Route("/api/v1/webhooks", create, methods=["POST"]),
        Route("/api/v1/webhooks/{id}", get, methods=["GET"]),
        Route("/api/v1/webhooks/{id}", update, methods=["PATCH"]),
        Route("/api/v1/webhooks/{id}", delete, methods=["DELETE"]),
        Route("/api/v1/webhooks/{id}/test", test, methods=["POST"]),
    ]
