"""Helpers of the v1 routes: list pages and body structs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...lifecycle import Lifecycle
from ...storage.billing import Customer
from ..http import cursor_of, next_cursor, ok, query_int

__all__ = ["Body", "known_customer", "page"]

T = TypeVar("T")


def known_customer(life: Lifecycle, ref: str, param: str = "customerId") -> Customer:
    """The customer ``ref`` names (id or externalId), or the platform's 404."""
    found = life.billing.customer_by_any_id(ref)
    if found is None:
        raise ApiError(404, "customer_not_found", f"customer {ref!r} not found", param=param)
    return found


class Body(msgspec.Struct, rename="camel", kw_only=True):
    """Request bodies: camelCase on the wire; unknown keys are ignored."""


def page(
    request: Request,
    fetch: Callable[[int, int], Sequence[T]],
    seq: Callable[[T], int],
    view: Callable[[T], Any],
) -> Response:
    """A cursor page: ``{object: "list", data, hasMore, nextCursor?}`` in the envelope.

    ``fetch(after, limit)`` returns up to ``limit`` items after position ``after``.
    """
    limit = query_int(request, "limit", 20, 100)
    items = list(fetch(cursor_of(request), limit + 1))
    more = len(items) > limit
    items = items[:limit]
    listing: dict[str, Any] = {
        "object": "list",
        "data": [view(item) for item in items],
        "hasMore": more,
    }
    if more and items:
        listing["nextCursor"] = next_cursor(seq(items[-1]))
    return ok(listing)
