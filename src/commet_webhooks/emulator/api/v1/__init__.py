"""The platform's ``/api/v1`` wire, one module per resource family."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ..context import Context
from . import access, clock, customers, plans, subscriptions, webhooks

__all__ = ["routes"]


def routes(ctx: Context) -> list[BaseRoute]:
    return [
        *webhooks.routes(ctx),
        *customers.routes(ctx),
        *plans.routes(ctx),
        *subscriptions.routes(ctx),
        *access.routes(ctx),
        *clock.routes(ctx),
    ]
