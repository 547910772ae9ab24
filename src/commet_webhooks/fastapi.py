"""FastAPI adapter: an ``APIRouter`` with the Commet webhook route.

>>> from commet_webhooks.fastapi import webhook_router
>>> app.include_router(webhook_router(webhooks))

The route is documented in the OpenAPI schema (summary, headers, request body,
answers), but FastAPI never parses the body: the endpoint takes the bare
``Request`` and hands the raw bytes to verification.
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

    POST is the documented operation; any other method reaches the same handler
    through an undocumented route and gets 405 with ``Allow: POST``.
    """
    app = WebhookApp(webhooks)

    async def receive_commet_webhook(request: Request) -> Response:
        answer = await app.respond(request.scope, request.receive)
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

    router = APIRouter(tags=list(tags) if tags else ["webhooks"])
    router.add_api_route(
        path,
        receive_commet_webhook,
        methods=["POST"],
        name="commet_webhooks",
        summary="Receive a Commet webhook",
        description=_DESCRIPTION,
        response_class=Response,
        responses=_RESPONSES,
        openapi_extra=_OPENAPI_EXTRA,
        include_in_schema=include_in_schema,
    )
    router.add_route(path, app, include_in_schema=False)  # type: ignore[arg-type]
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
