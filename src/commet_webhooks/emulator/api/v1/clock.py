"""``/api/v1/test-clock``: read the simulated time; advance it, running what falls due."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...errors import validation_error
from .. import views
from ..context import Context
from ..http import ok, read_body
from ._common import Body

__all__ = ["routes"]


class AdvanceIn(Body):
    advance_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] | None = None
    frozen_time: datetime | None = None


def routes(ctx: Context) -> list[BaseRoute]:
    life = ctx.lifecycle

    async def get(request: Request) -> Response:
        return ok(views.test_clock(life))

    async def advance(request: Request) -> Response:
        body = await read_body(request, AdvanceIn)
        if (body.advance_days is None) == (body.frozen_time is None):
            raise validation_error("advanceDays", "give exactly one of advanceDays or frozenTime")
        target = body.frozen_time
        if target is not None and target.tzinfo is None:
            raise validation_error("frozenTime", "must include a time zone (e.g. ...Z)")
        outcome = life.advance(days=body.advance_days, to=target)
        ctx.emitted()
        return ok(views.test_clock_run(outcome.result), 201)

    return [
        Route("/api/v1/test-clock", get, methods=["GET"]),
        Route("/api/v1/test-clock", advance, methods=["POST"]),
    ]
