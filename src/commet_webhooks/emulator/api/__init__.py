"""The emulator's HTTP API: the platform's v1 wire, the legacy paths, and the
emulator-only controls. Every route needs the API key (``x-api-key``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import control, legacy, v1
from .context import Context

__all__ = ["Context", "routes"]


def routes(ctx: Context) -> list[BaseRoute]:
    return [*v1.routes(ctx), *legacy.routes(ctx), *control.routes(ctx)]
