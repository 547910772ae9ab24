"""FastAPI adapter: an ``APIRouter`` with the Commet webhook route.

>>> from commet_webhooks.fastapi import webhook_router
>>> app.include_router(webhook_router(webhooks))

Requests are served by :class:`~commet_webhooks.asgi.WebhookApp` mounted as a plain
Starlette route: no dependency injection, no request or response model, no
``Request``/``Response`` objects -- the raw body goes straight to verification. The
POST operation is still documented in the OpenAPI schema (summary, headers, request
body, answers) through an ``APIRoute`` listed after it, which requests never reach.
Router-level ``dependencies=`` therefore do not run for this route; use middleware
for cross-cutting concerns.
"""

from __future__ import annotations

from typing import Any

try:
    from fastapi import APIRouter, Request, Response
except ImportError as exc:  # an optional extra is not installed
    from ._optional import missing_extra

    raise missing_extra("commet_webhooks.fastapi", "fastapi", exc) from exc

from ._adapter import DEFAULT_PATH
from .asgi import WebhookApp
from .dispatch import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhooks,
)
from .events import EVENT_TYPES

__all__ = ["webhook_router"]


def webhook_router(
    webhooks: Webhooks,
    path: str = DEFAULT_PATH,
    *,
    tags: list[str] | None = None,
    include_in_schema: bool = True,
) -> APIRouter:
    """An ``APIRouter`` that receives Commet webhooks at ``path``.

    Every method is served by a raw ASGI route (``name="commet_webhooks"``): POST is
    handled, others get 405 with ``Allow: POST``. The POST operation appears in the
    OpenAPI schema unless ``include_in_schema=False``.
    """
    app = WebhookApp(webhooks)

    async def receive_commet_webhook(request: Request) -> Response:
        # Documents the operation; the raw route above it answers first. Kept working
        # in case an application reorders routes.
        answer = await app.respond(request.scope, request.receive)
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

    router = APIRouter(tags=list(tags) if tags else ["webhooks"])
    # First: the route that serves every request, straight to the ASGI app.
    router.add_route(path, app, name="commet_webhooks", include_in_schema=False)  # type: ignore[arg-type]
    # Then: the documented POST operation (never matched: the route above matches first).
    router.add_api_route(
        path,
        receive_commet_webhook,
        methods=["POST"],
        name="commet_webhooks",  # the same name: url_path_for and operationId unchanged
        summary="Receive a Commet webhook",
        description=_DESCRIPTION,
        response_class=Response,
        responses=_RESPONSES,
        openapi_extra=_OPENAPI_EXTRA,
        include_in_schema=include_in_schema,
    )
    return router


_DESCRIPTION = (
    "Commet POSTs a signed JSON event here. The signature in `X-Commet-Signature` "
    "is checked over the raw body before anything else; the event is then routed "
    "to its handlers. Any non-2xx answer makes Commet retry."
)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Received (also for duplicates and unmodelled event types)."},
    400: {"description": "Signature valid, but the body is not a valid event envelope."},
    403: {"description": "Missing or wrong signature."},
    405: {"description": "Method other than POST."},
    409: {"description": "The same event is being processed by another worker."},
    413: {"description": "Body larger than the configured limit."},
    500: {"description": "A handler failed and retries on handler errors are enabled."},
}


def _header(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


_OPENAPI_EXTRA: dict[str, Any] = {
    "parameters": [
        _header(
            SIGNATURE_HEADER,
            "Lowercase hex HMAC-SHA256 of the raw body, keyed with the signing secret.",
            required=True,
        ),
        _header(EVENT_TYPE_HEADER, "The event type, e.g. `subscription.activated`."),
        _header(TIMESTAMP_HEADER, "ISO 8601 time the event was emitted."),
        _header(EVENT_ID_HEADER, "Unique event id, stable across retries."),
    ],
    "requestBody": {
        "required": True,
        "description": (
            "The event envelope, verified byte for byte against the signature. "
            "Modelled event types: " + ", ".join(f"`{name}`" for name in EVENT_TYPES) + "; "
            "any other type is accepted and reaches the catch-all handler."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["event", "timestamp", "organizationId", "data"],
                    "properties": {
                        "event": {"type": "string", "examples": list(EVENT_TYPES)},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "organizationId": {"type": "string"},
                        "id": {"type": "string"},
                        "mode": {"type": "string", "enum": ["live", "sandbox"]},
                        "apiVersion": {"type": "string"},
                        "data": {"type": "object", "additionalProperties": True},
                    },
                    "additionalProperties": True,
                }
            }
        },
    },
}
